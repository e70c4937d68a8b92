// The percentile bootstrap against what it must give: a point interval for constant data, the
// normal interval mean +- 1.96 sd / sqrt(n) for a large sample, the same interval for the same
// seed, and an interval that covers the true mean about 95% of the time.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootstrapMean, mulberry32 } from "../../src/metrics/index.js";

const normal = (next: () => number): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());

describe("bootstrapMean", () => {
  test("constant values: the interval is the value", () => {
    const r = bootstrapMean([0.7, 0.7, 0.7, 0.7]);
    assert.equal(r.mean, 0.7);
    assert.deepEqual(r.ci, [0.7, 0.7]);
  });

  test("a large sample: the interval matches mean +- 1.96 sd / sqrt(n) within 5%", () => {
    const next = mulberry32(1);
    const xs = Array.from({ length: 2000 }, () => 0.5 + 0.1 * normal(next));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
    const half = (1.96 * sd) / Math.sqrt(xs.length);
    const { ci } = bootstrapMean(xs, { resamples: 4000 });
    assert.ok(Math.abs(mean - half - ci[0]) < 0.05 * half, `low ${ci[0]} vs ${mean - half}`);
    assert.ok(Math.abs(mean + half - ci[1]) < 0.05 * half, `high ${ci[1]} vs ${mean + half}`);
  });

  test("seeded: the same seed gives the same interval, another seed another", () => {
    const xs = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55];
    assert.deepEqual(bootstrapMean(xs, { seed: 3 }), bootstrapMean(xs, { seed: 3 }));
    assert.notDeepEqual(bootstrapMean(xs, { seed: 3 }).ci, bootstrapMean(xs, { seed: 4 }).ci);
  });

  test("covers the true mean in about 95% of repeated samples", () => {
    const next = mulberry32(7);
    let covered = 0;
    const trials = 200;
    for (let k = 0; k < trials; k++) {
      const xs = Array.from({ length: 50 }, () => normal(next));
      const { ci } = bootstrapMean(xs, { resamples: 1000, seed: k });
      if (ci[0] <= 0 && 0 <= ci[1]) covered++;
    }
    // Binomial(200, 0.95) lies in [180, 198] with probability > 0.999; the percentile bootstrap runs slightly narrow at n = 50.
    assert.ok(covered >= 178 && covered <= 199, `covered ${covered} of ${trials}`);
  });

  test("no values is an error", () => {
    assert.throws(() => bootstrapMean([]), /no values/);
  });
});
