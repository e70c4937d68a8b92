// Image folders: PNGs written here with pngjs, found recursively in sorted order, converted to
// the requested channels and size, eagerly or lazily with the same values.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { imageFolder, listImageFiles } from "../../src/data/image-folder.js";
import { assertClose } from "../helpers/assert.js";

/** colorType 0 gray, 2 RGB, 6 RGBA; data interleaved (HWC) with that many channels. */
function writePng(path: string, width: number, height: number, colorType: 0 | 2 | 6, data: number[]): void {
  const png = new PNG({ width, height, colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 });
  png.data = Buffer.from(data);
  writeFileSync(path, PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 }));
}

const scale = (v: number): number => v / 127.5 - 1;
const luma = (r: number, g: number, b: number): number => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

describe("image folder", () => {
  const root = mkdtempSync(join(tmpdir(), "imgs-"));
  after(() => rmSync(root, { recursive: true }));
  // a.png: gray 2x2; c.PNG: RGBA 2x2; sub/b.png: RGB 1x1 (resized up); plus files to skip
  const gray = [0, 64, 128, 255];
  const rgba = [255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 10, 20, 30, 40];
  const rgb = [200, 100, 50];
  mkdirSync(join(root, "sub"));
  writePng(join(root, "a.png"), 2, 2, 0, gray);
  writePng(join(root, "c.PNG"), 2, 2, 6, rgba);
  writePng(join(root, "sub", "b.png"), 1, 1, 2, rgb);
  writePng(join(root, ".hidden.png"), 1, 1, 0, [1]);
  writeFileSync(join(root, "notes.txt"), "not an image");

  test("files: recursive, images only, sorted by relative path", () => {
    assert.deepEqual(listImageFiles(root).map((f) => f.slice(root.length + 1)), ["a.png", "c.PNG", "sub/b.png"]);
  });

  test("RGB samples: gray repeated, alpha dropped, a 1x1 image resized to 2x2", () => {
    for (const eager of [true, false]) {
      const ds = imageFolder(root, { sampleSize: 2, channels: 3, resize: "nearest", eager });
      assert.deepEqual([ds.length, ds.channels, ds.height, ds.width], [3, 3, 2, 2]);
      const batch = ds.getBatch([0, 1, 2]);
      assert.deepEqual(batch.shape, [3, 3, 2, 2]);
      const expected = [
        ...gray, ...gray, ...gray,
        ...[0, 1, 2].flatMap((c) => [0, 1, 2, 3].map((p) => rgba[p * 4 + c]!)),
        ...rgb.flatMap((v) => [v, v, v, v]),
      ].map(scale);
      assertClose(batch, expected, 1e-6, `eager ${eager}`);
    }
  });

  test("gray samples: RGB becomes PIL's luma; padding puts -1 around", () => {
    const ds = imageFolder(root, { sampleSize: 4, channels: 1, resize: "pad" });
    const v = ds.getBatch([1]).toTypedArray() as Float32Array;
    const inner = [0, 1, 2, 3].map((p) => luma(rgba[p * 4]!, rgba[p * 4 + 1]!, rgba[p * 4 + 2]!));
    const expected = new Array<number>(16).fill(0);
    [5, 6, 9, 10].forEach((at, k) => (expected[at] = inner[k]!));
    assertClose(v, expected.map(scale), 1e-6);
  });

  test("JPEG files load too (lossy: a flat colour within a few levels)", () => {
    const dir = join(root, "jpeg");
    mkdirSync(dir);
    const rgba = Buffer.from(Array.from({ length: 16 * 16 }, () => [90, 160, 30, 255]).flat());
    writeFileSync(join(dir, "flat.JPG"), jpeg.encode({ width: 16, height: 16, data: rgba }, 95).data);
    const v = imageFolder(dir, { sampleSize: 8, channels: 3 }).getBatch([0]);
    assert.deepEqual(v.shape, [1, 3, 8, 8]);
    const expected = [90, 160, 30].flatMap((c) => new Array<number>(64).fill(scale(c)));
    assertClose(v, expected, 4 / 127.5);
  });

  test("missing, empty and corrupt folders are clear errors", () => {
    const options = { sampleSize: 2, channels: 1 };
    assert.throws(() => imageFolder(join(root, "nope"), options), /cannot read dataset folder:.*nope: .*ENOENT.*; expected a folder of PNG or JPEG images/);
    const empty = join(root, "empty");
    mkdirSync(empty);
    assert.throws(() => imageFolder(empty, options), /no image files found/);
    const bad = join(root, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "x.png"), "definitely not a png");
    assert.throws(() => imageFolder(bad, options), /cannot decode image .*x\.png/);
    assert.throws(() => imageFolder(join(root, "a.png"), options), /not a folder/);
  });
});
