// IDX parsing on hand-made buffers: header, dims, data, gzip, and the errors for broken files.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parseIdx, readIdx } from "../../src/data/idx.js";

/** An IDX file: big-endian magic, dims, then the bytes. */
export function idxBytes(magic: number, dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

const pixels = Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 11) % 256);

describe("IDX", () => {
  test("raw images: dims and row-major bytes", () => {
    const { dims, data } = parseIdx(idxBytes(IDX_IMAGES_MAGIC, [2, 3, 4], pixels), { expectedMagic: IDX_IMAGES_MAGIC });
    assert.deepEqual(dims, [2, 3, 4]);
    assert.deepEqual(Array.from(data), pixels);
    assert.equal(data[1 * 12 + 2 * 4 + 3], (23 * 11) % 256); // image 1, row 2, col 3
  });

  test("gzipped labels give the same as raw", () => {
    const raw = idxBytes(IDX_LABELS_MAGIC, [5], [9, 0, 0, 3, 7]);
    const gz = parseIdx(gzipSync(raw), { expectedMagic: IDX_LABELS_MAGIC });
    assert.deepEqual(gz.dims, [5]);
    assert.deepEqual(Array.from(gz.data), [9, 0, 0, 3, 7]);
  });

  test("readIdx reads a .gz file from disk", () => {
    const dir = mkdtempSync(join(tmpdir(), "idx-"));
    try {
      const path = join(dir, "x-images-idx3-ubyte.gz");
      writeFileSync(path, gzipSync(idxBytes(IDX_IMAGES_MAGIC, [2, 3, 4], pixels)));
      assert.deepEqual(Array.from(readIdx(path, IDX_IMAGES_MAGIC).data), pixels);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("errors: bad magic, wrong kind, element type, truncated header and data, trailing bytes, bad gzip", () => {
    const good = idxBytes(IDX_IMAGES_MAGIC, [2, 3, 4], pixels);
    const withByte = (i: number, v: number): Uint8Array => Uint8Array.from(good, (b, j) => (j === i ? v : b));
    assert.throws(() => parseIdx(withByte(0, 0x50), { name: "f.idx" }), /f\.idx: bad magic number 0x50000803/);
    assert.throws(() => parseIdx(good, { expectedMagic: IDX_LABELS_MAGIC }), /magic number 0x00000803, expected 0x00000801/);
    assert.throws(() => parseIdx(withByte(2, 0x0d)), /element type 0xd is not supported/);
    assert.throws(() => parseIdx(good.subarray(0, 10)), /truncated header/);
    assert.throws(() => parseIdx(good.subarray(0, good.length - 1)), /truncated: dims \[2, 3, 4\] need 24 data bytes, found 23/);
    assert.throws(() => parseIdx(Uint8Array.from([...good, 0])), /trailing bytes/);
    assert.throws(() => parseIdx(gzipSync(good).subarray(0, 20)), /corrupt gzip/);
    assert.throws(() => parseIdx(new Uint8Array(2)), /too short/);
  });
});
