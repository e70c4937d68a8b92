// The shipped Fashion-MNIST classifier: its accuracy, and that its features make FID tell
// Fashion-MNIST from noise.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { openDataset } from "../../src/data/index.js";
import { classifierAccuracy, ClassifierExtractor, FashionMnistClassifier, fitGaussian, frechetDistance } from "../../src/metrics/index.js";
import { scratchDir } from "../helpers/fixtures.js";

describe("the shipped Fashion-MNIST classifier", () => {
  const extractor = ClassifierExtractor.load();

  test("at least 90% accuracy on 2000 test images", () => {
    const test = openDataset("fashion-mnist:test", { sampleSize: 32, channels: 1 });
    const accuracy = classifierAccuracy(extractor.model, test, { limit: 2000 });
    assert.ok(accuracy >= 0.9, `accuracy ${accuracy}`);
  });

  test("FID between two halves of the training data is far below FID against noise images", () => {
    const train = openDataset("fashion-mnist", { sampleSize: 32, channels: 1 });
    // In batches of 200: activations of larger ones pass 32 MiB and cost page faults (README).
    const stats = (batch: (start: number) => torch.Tensor) =>
      fitGaussian(torch.cat(Array.from({ length: 5 }, (_, k) => torch.tidy(() => extractor.features(batch(200 * k))))));
    const a = stats((start) => train.getBatch(Array.from({ length: 200 }, (_, i) => start + i)));
    const b = stats((start) => train.getBatch(Array.from({ length: 200 }, (_, i) => 1000 + start + i)));
    torch.manualSeed(0);
    const noise = stats(() => torch.rand([200, 1, 32, 32]).mul(2).sub(1));
    const halves = frechetDistance(a, b);
    const vsNoise = frechetDistance(a, noise);
    assert.equal(extractor.features(train.getBatch([0, 1])).shape.join(), "2,128");
    assert.ok(halves * 20 < vsNoise, `FID halves ${halves}, vs noise ${vsNoise}`);
  });

  test("a folder without weights says how to make them; wrong image shapes name the alternative", () => {
    assert.throws(() => FashionMnistClassifier.load(scratchDir()), /diffprune train-classifier --out/);
    assert.throws(() => extractor.features(torch.zeros([1, 3, 32, 32])), /Inception-v3 extractor/);
  });
});
