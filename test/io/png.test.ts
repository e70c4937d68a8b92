// Images: PNG round trips by channel count, JPEG decoding, tensor conversions, sample grids.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync as writeRaw } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import jpeg from "jpeg-js";
import * as torch from "../../src/torch/index.js";
import { decodeImage, encodePng, imageFromTensor, makeGrid, readImage, tensorFromImage, writePng, type Image } from "../../src/io/index.js";
import { scratchDir } from "../helpers/fixtures.js";

const dir = scratchDir();
after(() => rmSync(dir, { recursive: true, force: true }));

function patterned(width: number, height: number, channels: Image["channels"]): Image {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 3) * 11) & 0xff;
  return { width, height, channels, data };
}

describe("PNG", () => {
  for (const channels of [1, 3, 4] as const) {
    test(`round trip with ${channels} channel(s), stored as the matching color type`, () => {
      const img = patterned(7, 5, channels);
      const bytes = encodePng(img);
      assert.equal(bytes[25], { 1: 0, 3: 2, 4: 6 }[channels]); // IHDR color type
      const back = decodeImage(bytes);
      assert.deepEqual(back, { width: 7, height: 5, channels, data: img.data });
    });
  }

  test("writePng and readImage go through a file", () => {
    const path = join(dir, "x.png");
    const img = patterned(3, 4, 3);
    writePng(path, img);
    assert.deepEqual(readImage(path).data, img.data);
    assert.deepEqual(decodeImage(readFileSync(path)).data, img.data);
  });

  test("RGBA with transparency keeps alpha; a wrong data length is refused", () => {
    const img: Image = { width: 2, height: 1, channels: 4, data: new Uint8Array([10, 20, 30, 0, 40, 50, 60, 128]) };
    assert.deepEqual(decodeImage(encodePng(img)).data, img.data);
    assert.throws(() => encodePng({ ...img, data: new Uint8Array(7) }), /data has 7 bytes but 2x1x4 needs 8/);
  });

  test("files that are not images are refused with their name", () => {
    assert.throws(() => decodeImage(new Uint8Array([1, 2, 3]), "cat.png"), /^Error: cat\.png: not a PNG or JPEG file \(starts with 01 02 03\)/);
    const truncated = encodePng(patterned(8, 8, 3)).subarray(0, 40);
    assert.throws(() => decodeImage(truncated, "cut.png"), /cut\.png: not a valid PNG/);
  });
});

describe("JPEG", () => {
  test("decodes as RGB close to what was encoded", () => {
    const width = 16;
    const height = 8;
    const rgba = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) rgba.set([x * 16, y * 32, 200, 255], (y * width + x) * 4);
    const bytes = jpeg.encode({ width, height, data: rgba }, 95).data;
    const path = join(dir, "a.jpg");
    writeRaw(path, bytes);
    const img = readImage(path);
    assert.equal(img.channels, 3);
    assert.equal(img.width, width);
    assert.equal(img.height, height);
    let worst = 0;
    for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(img.data[i * 3 + c]! - rgba[i * 4 + c]!));
    assert.ok(worst <= 12, `JPEG error ${worst}`);
  });

  test("a grayscale JPEG (one component) decodes to 1 channel", () => {
    // Built by hand: an 8x8 baseline JPEG, one component, one-code Huffman tables; its only
    // block has DC category 4 with bits 1010 (= 10) and quantizer 8, so every pixel is
    // 10 * 8 / 8 + 128 = 138.
    const segment = (marker: number, body: number[]): number[] => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
    const oneCode = (symbol: number): number[] => [1, ...new Array<number>(15).fill(0), symbol];
    const bytes = new Uint8Array([
      0xff, 0xd8,
      ...segment(0xdb, [0, ...new Array<number>(64).fill(8)]), // quantization table 0
      ...segment(0xc0, [8, 0, 8, 0, 8, 1, 1, 0x11, 0]), // SOF0: 8x8, 1 component
      ...segment(0xc4, [0x00, ...oneCode(4)]), // DC table: "0" -> category 4
      ...segment(0xc4, [0x10, ...oneCode(0)]), // AC table: "0" -> end of block
      ...segment(0xda, [1, 1, 0x00, 0, 63, 0]),
      0b01010011, // DC "0" + 1010, AC "0", padding 11
      0xff, 0xd9,
    ]);
    const img = decodeImage(bytes, "gray.jpg");
    assert.deepEqual([img.width, img.height, img.channels], [8, 8, 1]);
    assert.deepEqual([...img.data], new Array(64).fill(138));
  });
});


describe("tensor conversions", () => {
  test("imageFromTensor maps [-1, 1] to [0, 255] with rounding and clamping, in HWC order", () => {
    // [C=3, H=1, W=2]: channel planes
    const t = torch.tensor(new Float32Array([-1, 1, 0, 2, -3, 0.5]), { shape: [3, 1, 2] });
    const img = imageFromTensor(t);
    assert.deepEqual({ ...img, data: [...img.data] }, { width: 2, height: 1, channels: 3, data: [0, 128, 0, 255, 255, 191] });
  });

  test("tensorFromImage gives [C, H, W] in [-1, 1], and the round trip is within 1/255", () => {
    const img = patterned(5, 4, 3);
    const t = tensorFromImage(img);
    assert.deepEqual(t.shape, [3, 4, 5]);
    assert.equal(t.dtype, "float32");
    const v = t.toArray();
    assert.ok(Math.abs(v[0]! - ((img.data[0]! / 255) * 2 - 1)) < 1e-7);
    assert.ok(Math.abs(v[20]! - ((img.data[1]! / 255) * 2 - 1)) < 1e-7); // channel 1 of pixel 0
    assert.deepEqual(imageFromTensor(t).data, img.data);

    const values = Float32Array.from({ length: 4 * 6 * 6 }, (_, i) => Math.sin(i * 1.7));
    const back = tensorFromImage(imageFromTensor(torch.tensor(values, { shape: [4, 6, 6] }))).toArray();
    values.forEach((x, i) => assert.ok(Math.abs(back[i]! - x) <= 1 / 255 + 1e-6, `element ${i}: ${back[i]} vs ${x}`));
  });

  test("a 1-channel tensor becomes a grayscale image", () => {
    const img = imageFromTensor(torch.tensor(new Float32Array([-1, 1]), { shape: [1, 1, 2] }));
    assert.equal(img.channels, 1);
    assert.deepEqual([...img.data], [0, 255]);
  });
});

describe("makeGrid", () => {
  const constantImages = (n: number, c: number, h: number, w: number): torch.Tensor => {
    // image k is constant at a value that maps to byte 10 * (k + 1) in every channel
    const v = new Float32Array(n * c * h * w);
    for (let k = 0; k < n; k++) v.fill(((10 * (k + 1)) / 255) * 2 - 1, k * c * h * w, (k + 1) * c * h * w);
    return torch.tensor(v, { shape: [n, c, h, w] });
  };
  const pixel = (img: Image, x: number, y: number, c = 0): number => img.data[(y * img.width + x) * img.channels + c]!;

  test("4 images make a padded 2x2 grid, as torchvision lays it out", () => {
    const h = 2;
    const w = 3;
    const pad = 2;
    const grid = makeGrid(constantImages(4, 3, h, w));
    assert.equal(grid.width, 2 * w + 3 * pad);
    assert.equal(grid.height, 2 * h + 3 * pad);
    assert.equal(grid.channels, 3);
    // image k's top-left and bottom-right pixels; row-major order
    for (let k = 0; k < 4; k++) {
      const left = (k % 2) * (w + pad) + pad;
      const top = Math.floor(k / 2) * (h + pad) + pad;
      for (let c = 0; c < 3; c++) {
        assert.equal(pixel(grid, left, top, c), 10 * (k + 1), `image ${k} channel ${c}`);
        assert.equal(pixel(grid, left + w - 1, top + h - 1, c), 10 * (k + 1));
      }
      assert.equal(pixel(grid, left - 1, top), 0, "padding left of each image");
      assert.equal(pixel(grid, left + w, top), 0, "padding right of each image");
    }
    const painted = grid.data.reduce((n, b) => n + (b > 0 ? 1 : 0), 0);
    assert.equal(painted, 4 * h * w * 3);
  });

  test("nrow and padding: 5 images default to 3 per row; nrow larger than N is one row", () => {
    const five = makeGrid(constantImages(5, 1, 4, 4), undefined, 1);
    assert.deepEqual([five.width, five.height, five.channels], [3 * 5 + 1, 2 * 5 + 1, 1]);
    assert.equal(pixel(five, 1 + 5, 1 + 5), 50); // image 4: row 1, column 1
    assert.equal(pixel(five, 1 + 10, 1 + 5), 0); // no image 5
    const row = makeGrid(constantImages(3, 1, 2, 2), 8, 0);
    assert.deepEqual([row.width, row.height], [6, 2]);
    assert.deepEqual([...row.data], [10, 10, 20, 20, 30, 30, 10, 10, 20, 20, 30, 30]);
  });

  test("a single image comes back unpadded", () => {
    const one = makeGrid(constantImages(1, 3, 2, 2));
    assert.deepEqual([one.width, one.height], [2, 2]);
    assert.deepEqual([...one.data], new Array(12).fill(10));
  });
});
