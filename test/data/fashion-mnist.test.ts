// The real Fashion-MNIST from Debian's dataset-fashion-mnist: counts, labels, and batch values.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FASHION_MNIST_CLASSES, fashionMnist } from "../../src/data/fashion-mnist.js";
import { assertClose } from "../helpers/assert.js";

describe("Fashion-MNIST", () => {
  const train = fashionMnist();
  const testSplit = fashionMnist({ split: "test", sampleSize: 28, channels: 3 });

  test("60000 train and 10000 test images of 28x28, 6000 / 1000 per class", () => {
    assert.equal(train.length, 60000);
    assert.equal(testSplit.length, 10000);
    const raw = train.rawImage(0);
    assert.deepEqual([raw.channels, raw.height, raw.width], [1, 28, 28]);
    for (const [ds, perClass] of [[train, 6000], [testSplit, 1000]] as const) {
      const counts = new Array<number>(10).fill(0);
      for (const label of ds.labels!) counts[label]!++;
      assert.deepEqual(counts, new Array(10).fill(perClass));
    }
    assert.equal(train.labels![0], 9);
    assert.equal(FASHION_MNIST_CLASSES[train.labels![0]!], "Ankle boot");
    assert.equal(testSplit.labels![0], 9);
  });

  test("a batch at sample size 32: 2 pixels of -1 around pixel / 127.5 - 1", () => {
    const indices = [0, 1, 59999];
    const batch = train.getBatch(indices);
    assert.deepEqual(batch.shape, [3, 1, 32, 32]);
    assert.equal(batch.dtype, "float32");
    const v = batch.toTypedArray() as Float32Array;
    assert.ok(v.every((x) => x >= -1 && x <= 1));
    indices.forEach((index, b) => {
      const raw = train.rawImage(index).data;
      assert.ok(raw.some((p) => p > 200), "the image is not blank");
      const expected = new Float32Array(32 * 32).fill(-1);
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) expected[(y + 2) * 32 + x + 2] = raw[y * 28 + x]! / 127.5 - 1;
      assertClose(v.subarray(b * 1024, (b + 1) * 1024), expected, 1e-6, `image ${index}`);
    });
  });

  test("3 channels repeat the gray plane; sample size 28 is the image itself", () => {
    const batch = testSplit.getBatch([5]);
    assert.deepEqual(batch.shape, [1, 3, 28, 28]);
    const v = batch.toTypedArray() as Float32Array;
    const raw = testSplit.rawImage(5).data;
    const plane = Float32Array.from(raw, (p) => p / 127.5 - 1);
    for (let c = 0; c < 3; c++) assertClose(v.subarray(c * 784, (c + 1) * 784), plane, 1e-6, `channel ${c}`);
  });

  test("a smaller sample size resizes bilinearly", () => {
    const small = fashionMnist({ split: "test", sampleSize: 14 });
    assert.deepEqual(small.getBatch([0, 1]).shape, [2, 1, 14, 14]);
  });

  test("a missing folder says to install dataset-fashion-mnist", () => {
    assert.throws(() => fashionMnist({ root: "/nonexistent/fmnist" }), /\/nonexistent\/fmnist\/train-images-idx3-ubyte\.gz not found.*dataset-fashion-mnist.*scripts\/setup\.sh/);
  });
});
