// Percentile bootstrap intervals: how far a mean measured on n samples could be from the mean
// of the whole population, without assuming a distribution. Seeded, so a report reproduces.

/** mulberry32: a small seeded generator of uniform floats in [0, 1), independent of torch's. */
export function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The mean of `values` and its (1 - alpha) percentile-bootstrap interval. */
export function bootstrapMean(values: readonly number[], { resamples = 10_000, alpha = 0.05, seed = 0 } = {}): { mean: number; ci: [number, number] } {
  const n = values.length;
  if (n === 0) throw new RangeError("bootstrapMean: no values");
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const next = mulberry32(seed);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(next() * n)]!;
    means[r] = sum / n;
  }
  means.sort();
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))]!;
  return { mean, ci: [at(alpha / 2), at(1 - alpha / 2)] };
}
