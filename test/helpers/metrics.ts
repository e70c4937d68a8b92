// Shared by the metrics tests: a cheap feature extractor, random image data, and a scratch
// statistics cache installed for one test file.
import { rmSync } from "node:fs";
import { after, before } from "node:test";
import type * as torch from "../../src/torch/index.js";
import { Uint8ImageDataset } from "../../src/data/index.js";
import type { FeatureExtractor } from "../../src/metrics/index.js";
import { scratchDir } from "./fixtures.js";
import { mulberry32 } from "./random.js";

/** Features = per-row means of 1 x size x size images: cheap, and enough to tell datasets apart. */
export class RowMeans implements FeatureExtractor {
  readonly name = "row-means";
  readonly featureDim: number;
  readonly inputShape: readonly [number, number, number];
  calls = 0;
  constructor(
    readonly size: number,
    readonly weightsHash = "none",
  ) {
    this.featureDim = size;
    this.inputShape = [1, size, size];
  }
  features(images: torch.Tensor): torch.Tensor {
    this.calls += 1;
    return images.mean(3).flatten(1);
  }
}

/** `count` uniformly random 1 x size x size uint8 images (seeded). */
export function randomImages(count: number, size: number, seed: number): Uint8ImageDataset {
  const rand = mulberry32(seed);
  const bytes = Uint8Array.from({ length: count * size * size }, () => Math.floor(rand() * 256));
  return new Uint8ImageDataset(bytes, { count, channels: 1, height: size, width: size }, { sampleSize: size, channels: 1, resize: "pad" });
}

/** Points $DIFFPRUNE_CACHE at a fresh folder for this test file; restores and removes it after. */
export function useScratchCache(prefix: string): string {
  const dir = scratchDir(prefix);
  const saved = process.env.DIFFPRUNE_CACHE;
  before(() => (process.env.DIFFPRUNE_CACHE = dir));
  after(() => {
    if (saved === undefined) delete process.env.DIFFPRUNE_CACHE;
    else process.env.DIFFPRUNE_CACHE = saved;
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
