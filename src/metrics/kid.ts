// KID (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimate of the squared
// maximum mean discrepancy between two feature sets under the cubic polynomial kernel
// k(x, y) = (x.y / d + 1)^3. Unlike FID it has no bias in the sample count, so it compares models
// measured on a few thousand images. As torch-fidelity computes it: the mean (and standard
// deviation) of the estimate over `subsets` random subsets of `subsetSize` rows of each set, drawn
// without replacement; the subsets here come from a seeded mulberry32, so a figure reproduces.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { FeatureExtractor } from "./extractors/extractor.js";
import { mulberry32 } from "./bootstrap.js";

export interface KIDOptions {
  /** Subsets averaged over; default 100. */
  subsets?: number;
  /** Rows per subset; default 1000, or the smaller set's size when it has fewer. */
  subsetSize?: number;
  /** Seeds the subset draws; default 0. */
  seed?: number;
}

export interface KIDResult {
  /** The mean of the unbiased MMD^2 over the subsets. */
  kid: number;
  /** Its standard deviation over the subsets (numpy's std, ddof 0, as torch-fidelity reports). */
  std: number;
  subsets: number;
  subsetSize: number;
}

/** Features [N, D] (float32) of images [N, C, H, W] in [-1, 1], a batch at a time. */
export function extractFeatures(images: Tensor, extractor: FeatureExtractor, { batchSize = 100, onProgress }: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {}): Tensor {
  const n = images.shape[0]!;
  const parts: Tensor[] = [];
  try {
    for (let i = 0; i < n; i += batchSize) {
      parts.push(torch.noGrad(() => torch.tidy(() => extractor.features(images.narrow(0, i, Math.min(batchSize, n - i))).float())));
      onProgress?.(Math.min(i + batchSize, n), n);
    }
    return torch.cat(parts, 0);
  } finally {
    torch.dispose(parts);
  }
}

/** `m` distinct indices of 0..n-1 (a partial Fisher-Yates shuffle). */
function choose(n: number, m: number, next: () => number): Int32Array {
  const pool = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(next() * (n - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, m);
}

/** The unbiased MMD^2 of two equal-sized feature sets [m, D] (float64) under (x.y / D + 1)^3. */
export function polynomialMmd2(x: Tensor, y: Tensor): number {
  const m = x.shape[0]!;
  const d = x.shape[1]!;
  return torch.tidy(() => {
    const kernel = (a: Tensor, b: Tensor) => a.matmul(b.T).div(d).add(1).pow(3);
    const kxx = kernel(x, x);
    const kyy = kernel(y, y);
    const offDiagonal = (k: Tensor) => k.sum().sub(torch.trace(k)).item() / (m * (m - 1));
    return offDiagonal(kxx) + offDiagonal(kyy) - (2 * kernel(x, y).sum().item()) / (m * m);
  });
}

/** KID between feature sets a [N1, D] and b [N2, D]. */
export function kernelInceptionDistance(a: Tensor, b: Tensor, { subsets = 100, subsetSize = 1000, seed = 0 }: KIDOptions = {}): KIDResult {
  if (a.ndim !== 2 || b.ndim !== 2 || a.shape[1] !== b.shape[1])
    throw new Error(`KID: expected two feature sets [N, D] of the same D, got [${a.shape.join(", ")}] and [${b.shape.join(", ")}]`);
  const m = Math.min(subsetSize, a.shape[0]!, b.shape[0]!);
  if (m < 2) throw new Error(`KID needs at least 2 feature vectors in each set, got ${a.shape[0]} and ${b.shape[0]}`);
  if (!Number.isInteger(subsets) || subsets < 1) throw new RangeError(`KID: subsets must be a positive integer, got ${subsets}`);
  const next = mulberry32(seed);
  const values: number[] = [];
  const [x, y] = [a.double(), b.double()];
  try {
    for (let s = 0; s < subsets; s++) {
      const ix = choose(a.shape[0]!, m, next);
      const iy = choose(b.shape[0]!, m, next);
      values.push(
        torch.tidy(() => polynomialMmd2(x.indexSelect(0, torch.tensor(ix).long()), y.indexSelect(0, torch.tensor(iy).long()))),
      );
    }
  } finally {
    torch.dispose([x, y]);
  }
  const kid = values.reduce((s, v) => s + v, 0) / subsets;
  const std = Math.sqrt(values.reduce((s, v) => s + (v - kid) ** 2, 0) / subsets);
  return { kid, std, subsets, subsetSize: m };
}
