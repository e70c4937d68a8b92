// Dataset statistics are cached per (dataset, extractor, weights, count), atomically, and a
// damaged cache file is recomputed.
import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { cacheDir, datasetStats, frechetDistance, imageStats, statsCachePath } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";
import { randomImages, RowMeans, useScratchCache } from "../helpers/metrics.js";

const scratch = useScratchCache("diffprune-cache-");
const data = randomImages(300, 8, 7);

describe("datasetStats", () => {
  test("the second call reads the cache file instead of running the extractor", () => {
    assert.equal(cacheDir(), scratch);
    const extractor = new RowMeans(8, "aaaa");
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
    const extractor = new RowMeans(8, "bbbb");
    const limited = datasetStats(data, extractor, { spec: "test-data", limit: 100 });
    assert.equal(limited.count, 100);
    assert.ok(extractor.calls > 0);
  });

  test("a damaged cache file is recomputed and replaced", () => {
    const extractor = new RowMeans(8, "cccc");
    const path = statsCachePath({ dataset: "test-data", extractor: "row-means", weightsHash: "cccc", count: 300 });
    const good = datasetStats(data, extractor, { spec: "test-data" });
    writeFileSync(path, "not a safetensors file");
    const again = datasetStats(data, extractor, { spec: "test-data" });
    assert.ok(frechetDistance(good, again) < 1e-9);
    assert.equal(datasetStats(data, extractor, { spec: "test-data" }).count, 300);
  });

  test("images of the wrong shape for the extractor are an error before any work", () => {
    assert.throws(() => imageStats(torch.zeros([4, 3, 8, 8]), new RowMeans(8, "x")), /takes images \[N, 1, 8, 8\]/);
  });
});
