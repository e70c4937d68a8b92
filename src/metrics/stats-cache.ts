// Dataset statistics for FID are costly (a pass over 60k images) and fixed for a given dataset
// and extractor, so they are cached on disk: $DIFFPRUNE_CACHE, else $XDG_CACHE_HOME/diffprune,
// else ~/.cache/diffprune. The key holds the extractor's weight-file hash: retrained weights
// never meet stale statistics. Files are written atomically; an unreadable one is recomputed.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadFile, saveFile } from "../io/index.js";
import * as torch from "../torch/index.js";
import type { GaussianStats } from "./frechet.js";

export function cacheDir(): string {
  if (process.env.DIFFPRUNE_CACHE) return process.env.DIFFPRUNE_CACHE;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "diffprune");
}

export interface StatsKey {
  /** The dataset spec ("fashion-mnist", "folder:/data/x"); folders are keyed by path, not content. */
  dataset: string;
  extractor: string;
  weightsHash: string;
  /** Images used (the first `count` of the dataset). */
  count: number;
}

/** The cache file of a key: readable prefix, hash of the whole key. */
export function statsCachePath(key: StatsKey): string {
  const hash = createHash("sha256").update(JSON.stringify([key.dataset, key.extractor, key.weightsHash, key.count])).digest("hex").slice(0, 16);
  const slug = key.dataset.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 40);
  return join(cacheDir(), "fid-stats", `${slug}-${key.extractor}-n${key.count}-${hash}.safetensors`);
}

/** The cached statistics of `key`, or null when absent or unreadable. */
export function loadCachedStats(key: StatsKey): GaussianStats | null {
  const path = statsCachePath(key);
  if (!existsSync(path)) return null;
  try {
    const t = loadFile(path);
    const mu = t.get("mu");
    const sigma = t.get("sigma");
    if (!mu || !sigma) {
      torch.dispose([...t.values()]);
      return null;
    }
    return { mu, sigma, count: key.count };
  } catch {
    return null; // a truncated or foreign file: recompute and overwrite
  }
}

export function saveCachedStats(key: StatsKey, stats: GaussianStats): void {
  const path = statsCachePath(key);
  mkdirSync(join(cacheDir(), "fid-stats"), { recursive: true });
  saveFile({ mu: stats.mu, sigma: stats.sigma }, path, {
    dataset: key.dataset,
    extractor: key.extractor,
    weights_sha256: key.weightsHash,
    count: String(key.count),
  });
}
