// KID against a direct computation in plain JS (doubles, every pair of rows): with subsets of the
// whole sets every subset is a reordering, so each gives the same value; with smaller subsets the
// mean over many draws approaches it (the subset estimate is unbiased for it). Two sets from one
// distribution give about 0, two from shifted ones a clearly positive value.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as torch from "../../src/torch/index.js";
import { extractFeatures, kernelInceptionDistance, mulberry32, type FeatureExtractor } from "../../src/metrics/index.js";

const normal = (next: () => number): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());

function features(n: number, d: number, seed: number, shift = 0): number[][] {
  const next = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: d }, () => normal(next) + shift));
}

/** The unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written out. */
function plainMmd2(x: number[][], y: number[][]): number {
  const d = x[0]!.length;
  const k = (a: number[], b: number[]) => (a.reduce((s, v, i) => s + v * b[i]!, 0) / d + 1) ** 3;
  const m = x.length;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < m; j++) {
      if (i !== j) {
        xx += k(x[i]!, x[j]!);
        yy += k(y[i]!, y[j]!);
      }
      xy += k(x[i]!, y[j]!);
    }
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - (2 * xy) / (m * m);
}

const kid = (x: number[][], y: number[][], o: Parameters<typeof kernelInceptionDistance>[2]) =>
  torch.tidy(() => kernelInceptionDistance(torch.tensor(x, { dtype: "float64" }), torch.tensor(y, { dtype: "float64" }), o));

describe("kernelInceptionDistance", () => {
  const x = features(40, 6, 1);
  const y = features(40, 6, 2, 0.3);

  test("subsets of the whole sets: every subset gives the plain computation", () => {
    const r = kid(x, y, { subsets: 5, subsetSize: 1000 });
    assert.equal(r.subsetSize, 40);
    const expected = plainMmd2(x, y);
    assert.ok(Math.abs(r.kid - expected) < 1e-9 * Math.max(1, Math.abs(expected)), `${r.kid} vs ${expected}`);
    assert.ok(r.std < 1e-9, `std ${r.std}`);
  });

  test("smaller subsets: the mean over many draws approaches the whole-set value", () => {
    const expected = plainMmd2(x, y);
    const r = kid(x, y, { subsets: 2000, subsetSize: 20, seed: 3 });
    assert.equal(r.subsetSize, 20);
    assert.ok(r.std > 0);
    assert.ok(Math.abs(r.kid - expected) < (4 * r.std) / Math.sqrt(2000) + 1e-6, `${r.kid} vs ${expected} (std ${r.std})`);
    assert.deepEqual(kid(x, y, { subsets: 10, subsetSize: 20, seed: 3 }), kid(x, y, { subsets: 10, subsetSize: 20, seed: 3 }));
  });

  test("one distribution gives about 0, shifted ones a positive value", () => {
    const same = kid(features(200, 4, 5), features(200, 4, 6), { subsets: 20, subsetSize: 100 });
    const apart = kid(features(200, 4, 5), features(200, 4, 6, 1), { subsets: 20, subsetSize: 100 });
    assert.ok(Math.abs(same.kid) < 0.1, `same ${same.kid}`);
    assert.ok(apart.kid > 10 * Math.abs(same.kid) && apart.kid > 0.2, `apart ${apart.kid}, same ${same.kid}`);
  });

  test("refuses mismatched or too small sets", () => {
    assert.throws(() => kid([[1, 2]], [[1, 2]], {}), /at least 2 feature vectors/);
    assert.throws(() => kid(features(3, 2, 1), features(3, 3, 1), {}), /same D/);
  });
});

describe("extractFeatures", () => {
  test("batches through the extractor and keeps the order", () => {
    const extractor: FeatureExtractor = { name: "mean", featureDim: 1, weightsHash: "", inputShape: null, features: (images) => images.flatten(1).mean(1, true) };
    const images = torch.arange(0, 7).reshape(7, 1, 1, 1).float();
    const done: number[] = [];
    const f = extractFeatures(images, extractor, { batchSize: 3, onProgress: (d) => done.push(d) });
    assert.deepEqual(f.toArray(), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(done, [3, 6, 7]);
    torch.dispose([images, f]);
  });
});
