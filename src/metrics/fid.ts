// FID: features of generated images and of a dataset through one extractor, Gaussian fits,
// and their Frechet distance. Dataset statistics come from the cache when they can.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { ImageDataset } from "../data/index.js";
import type { FeatureExtractor } from "./extractors/extractor.js";
import { frechetDistance, GaussianAccumulator, type GaussianStats } from "./frechet.js";
import { loadCachedStats, saveCachedStats, type StatsKey } from "./stats-cache.js";

export interface FeatureOptions {
  /** Images through the extractor at once; default 100. */
  batchSize?: number;
  /** Called after each batch with (images done, total). */
  onProgress?: (done: number, total: number) => void;
}

function checkShape(extractor: FeatureExtractor, shape: readonly number[], what: string): void {
  const want = extractor.inputShape;
  if (want && shape.slice(1).join() !== want.join())
    throw new Error(`${extractor.name} takes images [N, ${want.join(", ")}] but ${what} are [N, ${shape.slice(1).join(", ")}]`);
}

/** Feature statistics of images [N, C, H, W] in [-1, 1] (generated samples). */
export function imageStats(images: Tensor, extractor: FeatureExtractor, { batchSize = 100, onProgress }: FeatureOptions = {}): GaussianStats {
  checkShape(extractor, images.shape, "the images");
  const n = images.shape[0]!;
  const acc = new GaussianAccumulator();
  try {
    for (let i = 0; i < n; i += batchSize) {
      torch.tidy(() => acc.add(extractor.features(images.narrow(0, i, Math.min(batchSize, n - i)))));
      onProgress?.(Math.min(i + batchSize, n), n);
    }
    return acc.stats();
  } finally {
    acc.dispose();
  }
}

export interface DatasetStatsOptions extends FeatureOptions {
  /** The dataset's spec, for the cache key. */
  spec: string;
  /** Use the first `limit` images (default: all). */
  limit?: number;
  /** Read and write the statistics cache; default true. */
  cache?: boolean;
}

/** Feature statistics of (the first `limit` images of) a dataset, cached per dataset and extractor. */
export function datasetStats(dataset: ImageDataset, extractor: FeatureExtractor, options: DatasetStatsOptions): GaussianStats {
  const { spec, limit = dataset.length, cache = true, batchSize = 100, onProgress } = options;
  checkShape(extractor, [0, dataset.channels, dataset.height, dataset.width], `${spec}'s images`);
  const count = Math.min(limit, dataset.length);
  const key: StatsKey = { dataset: spec, extractor: extractor.name, weightsHash: extractor.weightsHash, count };
  const cached = cache ? loadCachedStats(key) : null;
  if (cached) return cached;
  const acc = new GaussianAccumulator();
  try {
    for (let i = 0; i < count; i += batchSize) {
      const indices = Array.from({ length: Math.min(batchSize, count - i) }, (_, k) => i + k);
      torch.tidy(() => acc.add(extractor.features(dataset.getBatch(indices))));
      onProgress?.(i + indices.length, count);
    }
    const stats = acc.stats();
    if (cache) saveCachedStats(key, stats);
    return stats;
  } finally {
    acc.dispose();
  }
}

export interface FIDResult {
  fid: number;
  extractor: string;
  /** Generated images compared. */
  numSamples: number;
  /** Reference images the statistics came from. */
  numReference: number;
}

/** FID of images [N, C, H, W] in [-1, 1] against reference statistics. */
export function fid(images: Tensor, reference: GaussianStats, extractor: FeatureExtractor, options: FeatureOptions = {}): FIDResult {
  const stats = imageStats(images, extractor, options);
  try {
    return { fid: frechetDistance(stats, reference), extractor: extractor.name, numSamples: stats.count, numReference: reference.count };
  } finally {
    torch.dispose([stats.mu, stats.sigma]);
  }
}
