// Dataset spec strings: each kind opens what it names; unknown specs and unreadable data say why.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { openDataset } from "../../src/data/index.js";

describe("openDataset", () => {
  const sample = { sampleSize: 32, channels: 1 };

  test("fashion-mnist and fashion-mnist:test", () => {
    const train = openDataset("fashion-mnist", sample);
    assert.deepEqual([train.length, train.channels, train.height, train.width], [60000, 1, 32, 32]);
    assert.equal(train.labels![0], 9);
    assert.equal(openDataset("fashion-mnist:test", sample).length, 10000);
  });

  test("unknown specs list what is accepted", () => {
    for (const spec of ["mnist", "fashion-mnist:val", "folder:", "cifar10", ""])
      assert.throws(() => openDataset(spec, sample), /unknown dataset spec ".*"; expected one of: fashion-mnist, fashion-mnist:test, folder:<path>, cifar10:<dir>, cifar10-test:<dir>/);
  });

  test("sample options no model takes are rejected up front", () => {
    assert.throws(() => openDataset("fashion-mnist:test", { sampleSize: 32, channels: 2 }), /channels must be 1 \(gray\) or 3 \(RGB\), got 2/);
    assert.throws(() => openDataset("fashion-mnist:test", { sampleSize: 0, channels: 1 }), /sampleSize must be a positive integer/);
    assert.throws(() => openDataset("fashion-mnist:test", { sampleSize: 16, channels: 1, resize: "pad" }), /resize "pad" cannot fit 28x28 images into 16x16/);
  });

  test("unreadable data names the dataset and what was expected", () => {
    assert.throws(() => openDataset("folder:/nonexistent/images", sample), /cannot read dataset folder:\/nonexistent\/images: .*; expected a folder of PNG or JPEG images/);
    assert.throws(() => openDataset("cifar10-test:/nonexistent/cifar", sample), /cannot read dataset cifar10 at \/nonexistent\/cifar: test_batch\.bin not found/);
    assert.throws(() => openDataset("fashion-mnist", { ...sample, fashionMnistRoot: "/nonexistent/fm" }), /cannot read dataset fashion-mnist: .*not found; .*dataset-fashion-mnist/);
  });
});
