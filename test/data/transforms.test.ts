// Transforms against hand-computed pixels: channel conversion, pad, crop, resize, scaling, flips.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { centerCrop, centerPad, convertChannels, fitToSize, randomHorizontalFlip, resize, toNormalizedTensor, type ChwImage } from "../../src/data/transforms.js";
import * as torch from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";

const img = (channels: number, height: number, width: number, data: number[]): ChwImage => ({ channels, height, width, data: Uint8Array.from(data) });

describe("channels", () => {
  test("gray -> RGB repeats, RGB -> gray is PIL's luma, RGBA -> RGB drops alpha", () => {
    const gray = img(1, 1, 2, [10, 200]);
    assert.deepEqual(Array.from(convertChannels(gray, 3).data), [10, 200, 10, 200, 10, 200]);
    // planes R, G, B (and A): pixel 0 pure red, pixel 1 (10, 20, 30)
    const rgba = img(4, 1, 2, [255, 10, 0, 20, 0, 30, 7, 7]);
    assert.deepEqual(Array.from(convertChannels(rgba, 3).data), [255, 10, 0, 20, 0, 30]);
    // PIL: L = R*299/1000 + G*587/1000 + B*114/1000, rounded: 255*0.299 = 76.2 -> 76; 10*.299+20*.587+30*.114 = 18.13 -> 18
    assert.deepEqual(Array.from(convertChannels(rgba, 1).data), [76, 18]);
    assert.throws(() => convertChannels(gray, 2), /cannot convert 1 channels to 2/);
  });
});

describe("geometry", () => {
  test("centerPad puts the image in the middle of a zero canvas", () => {
    const out = centerPad(img(1, 2, 2, [1, 2, 3, 4]), 4, 4);
    assert.deepEqual(Array.from(out.data), [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]);
    assert.throws(() => centerPad(img(1, 2, 2, [1, 2, 3, 4]), 1, 4), /does not fit/);
  });

  test("centerCrop takes the middle", () => {
    const out = centerCrop(img(1, 4, 4, Array.from({ length: 16 }, (_, i) => i)), 2, 2);
    assert.deepEqual(Array.from(out.data), [5, 6, 9, 10]);
  });

  test("nearest resize follows torch: src = floor(dst * in / out)", () => {
    const up = resize(img(1, 1, 2, [10, 20]), 2, 4, "nearest");
    assert.deepEqual(Array.from(up.data), [10, 10, 20, 20, 10, 10, 20, 20]);
    const down = resize(img(1, 1, 4, [1, 2, 3, 4]), 1, 2, "nearest");
    assert.deepEqual(Array.from(down.data), [1, 3]);
  });

  test("bilinear resize: half-pixel centres upsampling, box-like averaging downsampling", () => {
    // 2 -> 4: output centres at 0.25, 0.75, 1.25, 1.75 in source pixel units (centres 0.5, 1.5)
    // -> 0, 0.25, 0.75, 1 of the way from 0 to 100 (edges clamp).
    const up = resize(img(1, 1, 2, [0, 100]), 1, 4, "bilinear");
    assert.deepEqual(Array.from(up.data), [0, 25, 75, 100]);
    // 4 -> 2 (scale 2): a triangle of half-width 2 at centres 1 and 3; taps at pixel centres
    // 0.5..3.5 weigh 0.75, 0.75, 0.25 (left) and 0.25, 0.75, 0.75 (right), clipped at the edge and
    // renormalised: (0*.75 + 40*.75 + 80*.25) / 1.75 = 28.57 -> 29; (40*.25 + 80*.75 + 120*.75) / 1.75 = 91.43 -> 91
    const down = resize(img(1, 1, 4, [0, 40, 80, 120]), 1, 2, "bilinear");
    assert.deepEqual(Array.from(down.data), [29, 91]);
    // a constant image stays constant at any size
    const flat = resize(img(1, 3, 5, new Array(15).fill(77)), 7, 2, "bilinear");
    assert.ok(flat.data.every((v) => v === 77));
  });

  test("fitToSize resizes the shorter side then crops the centre", () => {
    // 2x4 -> shorter side 2 -> 4: 4x8 nearest, then centre 4x4 (columns 2..5)
    const src = img(1, 2, 4, [1, 2, 3, 4, 5, 6, 7, 8]);
    const out = fitToSize(src, 4, "nearest");
    assert.deepEqual([out.height, out.width], [4, 4]);
    assert.deepEqual(Array.from(out.data), [2, 2, 3, 3, 2, 2, 3, 3, 6, 6, 7, 7, 6, 6, 7, 7]);
    assert.deepEqual(Array.from(fitToSize(img(1, 1, 1, [9]), 3, "pad").data), [0, 0, 0, 0, 9, 0, 0, 0, 0]);
  });
});

describe("to tensor and flips", () => {
  test("uint8 scales to x / 127.5 - 1", () => {
    const t = toNormalizedTensor(Uint8Array.from([0, 51, 255, 128]), [1, 1, 2, 2]);
    assert.deepEqual(t.shape, [1, 1, 2, 2]);
    assert.equal(t.dtype, "float32");
    assertClose(t, [-1, 51 / 127.5 - 1, 1, 128 / 127.5 - 1], 1e-6);
  });

  test("randomHorizontalFlip: p = 1 mirrors, p = 0 keeps, seeded draws repeat", () => {
    const x = torch.arange(0, 2 * 2 * 3).float().reshape(2, 1, 2, 3);
    assert.deepEqual(randomHorizontalFlip(x, 1).toArray(), [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]);
    assert.deepEqual(randomHorizontalFlip(x, 0).toArray(), x.toArray());
    const many = torch.arange(0, 64 * 2).float().reshape(64, 1, 1, 2);
    torch.manualSeed(7);
    const a = randomHorizontalFlip(many).toArray();
    torch.manualSeed(7);
    const b = randomHorizontalFlip(many).toArray();
    assert.deepEqual(a, b);
    // each image is either itself or its mirror, and with p = 0.5 over 64 images both occur
    let flipped = 0;
    for (let i = 0; i < 64; i++) {
      const pair = [a[2 * i], a[2 * i + 1]];
      if (pair[0] === 2 * i + 1 && pair[1] === 2 * i) flipped++;
      else assert.deepEqual(pair, [2 * i, 2 * i + 1]);
    }
    assert.ok(flipped > 10 && flipped < 54, `${flipped} of 64 flipped`);
  });
});
