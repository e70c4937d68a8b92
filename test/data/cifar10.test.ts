// CIFAR-10 binary batches on synthetic records: layout, labels, file discovery, size checks.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { cifar10, CIFAR10_TRAIN_FILES, parseCifar10 } from "../../src/data/cifar10.js";
import { assertClose } from "../helpers/assert.js";

/** A record: label, then R, G, B planes where pixel value = (plane base + position) % 256. */
function record(label: number, base: number): Uint8Array {
  const r = new Uint8Array(3073);
  r[0] = label;
  for (let k = 0; k < 3072; k++) r[1 + k] = (base + k) % 256;
  return r;
}
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => Array.from(p)));

describe("CIFAR-10 binary", () => {
  const dir = mkdtempSync(join(tmpdir(), "cifar-"));
  after(() => rmSync(dir, { recursive: true }));

  test("two records: labels and CHW images", () => {
    const { images, labels } = parseCifar10(cat(record(3, 0), record(9, 100)));
    assert.deepEqual(Array.from(labels), [3, 9]);
    assert.equal(images.length, 2 * 3072);
    assert.equal(images[0], 0);
    assert.equal(images[3072 + 1024 + 5], (100 + 1024 + 5) % 256); // image 1, G plane, pixel 5
  });

  test("sizes and labels are validated", () => {
    assert.throws(() => parseCifar10(record(1, 0).subarray(0, 3000), "b.bin"), /b\.bin: 3000 bytes is not a whole number of 3073-byte records/);
    assert.throws(() => parseCifar10(new Uint8Array(0)), /0 bytes/);
    assert.throws(() => parseCifar10(record(42, 0)), /record 0 has label 42, expected 0\.\.9/);
  });

  test("a folder of batches (here in cifar-10-batches-bin/) loads in file order as [-1, 1] samples", () => {
    const sub = join(dir, "cifar-10-batches-bin");
    mkdirSync(sub);
    CIFAR10_TRAIN_FILES.forEach((f, i) => writeFileSync(join(sub, f), cat(record(i, i), record(9 - i, 50 * i))));
    writeFileSync(join(sub, "test_batch.bin"), record(7, 200));
    const train = cifar10(dir);
    assert.equal(train.length, 10);
    assert.deepEqual(Array.from(train.labels!), [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]);
    const batch = train.getBatch([3]); // file 1's second record, base 50
    assert.deepEqual(batch.shape, [1, 3, 32, 32]);
    assertClose(batch, Float32Array.from({ length: 3072 }, (_, k) => ((50 + k) % 256) / 127.5 - 1), 1e-6);
    const testSplit = cifar10(sub, { split: "test", channels: 1, sampleSize: 16 });
    assert.equal(testSplit.length, 1);
    assert.deepEqual(testSplit.getBatch([0]).shape, [1, 1, 16, 16]);
  });

  test("a missing batch is a clear error", () => {
    assert.throws(() => cifar10(join(dir, "nothing-here")), /cannot read dataset cifar10 at .*nothing-here: data_batch_1\.bin not found; expected the binary batches/);
    const partial = join(dir, "partial");
    mkdirSync(partial);
    writeFileSync(join(partial, "data_batch_1.bin"), record(0, 0));
    assert.throws(() => cifar10(partial), /data_batch_2\.bin is missing/);
  });
});
