// Dataset statistics are cached per (dataset, extractor, weights, count), atomically, and a
// damaged cache file is recomputed.
import assert from "node:assert/strict";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { Uint8ImageDataset } from "../../src/data/index.js";
import { cacheDir, datasetStats, frechetDistance, imageStats, statsCachePath, type FeatureExtractor } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";
import { mulberry32 } from "../helpers/random.js";
import { scratchDir } from "../helpers/fixtures.js";

/** Features = per-row means: cheap, and enough to tell datasets apart. */
class RowMeans implements FeatureExtractor {
  readonly name = "row-means";
  readonly featureDim = 8;
  readonly inputShape = [1, 8, 8] as const;
  calls = 0;
  constructor(readonly weightsHash: string) {}
  features(images: torch.Tensor): torch.Tensor {
    this.calls += 1;
    return images.mean(3).flatten(1);
  }
}

const scratch = scratchDir("diffprune-cache-");
const saved = process.env.DIFFPRUNE_CACHE;
before(() => (process.env.DIFFPRUNE_CACHE = scratch));
after(() => {
  if (saved === undefined) delete process.env.DIFFPRUNE_CACHE;
  else process.env.DIFFPRUNE_CACHE = saved;
  rmSync(scratch, { recursive: true, force: true });
});

const rand = mulberry32(7);
const data = new Uint8ImageDataset(Uint8Array.from({ length: 300 * 64 }, () => Math.floor(rand() * 256)), { count: 300, channels: 1, height: 8, width: 8 }, { sampleSize: 8, channels: 1, resize: "pad" });

describe("datasetStats", () => {
  test("the second call reads the cache file instead of running the extractor", () => {
    assert.equal(cacheDir(), scratch);
    const extractor = new RowMeans("aaaa");
    const first = datasetStats(data, extractor, { spec: "test-data", batchSize: 64 });
    const calls = extractor.calls;
    assert.equal(calls, 5);
    const second = datasetStats(data, extractor, { spec: "test-data" });
    assert.equal(extractor.calls, calls);
    assertClose(second.mu, first.mu, 0, "mu");
    assertClose(second.sigma, first.sigma, 0, "sigma");
    assert.equal(second.count, 300);
    assert.deepEqual(readdirSync(join(scratch, "fid-stats")).filter((f) => f.startsWith(".")), [], "no temp files left");
  });

  test("other weights, another image count or another dataset get their own entry", () => {
    const key = { dataset: "test-data", extractor: "row-means", weightsHash: "aaaa", count: 300 };
    const paths = new Set([
      statsCachePath(key),
      statsCachePath({ ...key, weightsHash: "bbbb" }),
      statsCachePath({ ...key, count: 100 }),
      statsCachePath({ ...key, dataset: "folder:/x" }),
    ]);
    assert.equal(paths.size, 4);
    const extractor = new RowMeans("bbbb");
    const limited = datasetStats(data, extractor, { spec: "test-data", limit: 100 });
    assert.equal(limited.count, 100);
    assert.ok(extractor.calls > 0);
  });

  test("a damaged cache file is recomputed and replaced", () => {
    const extractor = new RowMeans("cccc");
    const path = statsCachePath({ dataset: "test-data", extractor: "row-means", weightsHash: "cccc", count: 300 });
    const good = datasetStats(data, extractor, { spec: "test-data" });
    writeFileSync(path, "not a safetensors file");
    const again = datasetStats(data, extractor, { spec: "test-data" });
    assert.ok(frechetDistance(good, again) < 1e-9);
    assert.equal(datasetStats(data, extractor, { spec: "test-data" }).count, 300);
  });

  test("images of the wrong shape for the extractor are an error before any work", () => {
    assert.throws(() => imageStats(torch.zeros([4, 3, 8, 8]), new RowMeans("x")), /takes images \[N, 1, 8, 8\]/);
  });
});
