// The loader: seeded shuffles, epoch coverage, drop_last, resuming at (epoch, position), flips.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Uint8ImageDataset } from "../../src/data/dataset.js";
import { DataLoader, type Batch } from "../../src/data/loader.js";
import * as torch from "../../src/torch/index.js";

/** n images of 1x2x3 whose pixels encode their index: image i holds i*6 .. i*6+5 (mod 256). */
function numbered(n: number): Uint8ImageDataset {
  const bytes = Uint8Array.from({ length: n * 6 }, (_, k) => k % 256);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return new Uint8ImageDataset(bytes, { count: n, channels: 1, height: 2, width: 3 }, { sampleSize: 3, channels: 1, resize: "pad" }, { labels });
}

const indicesOf = (batches: Iterable<Batch>): number[][] => Array.from(batches, (b) => b.indices);

describe("DataLoader", () => {
  const data = numbered(100);

  test("the same seed gives the same order; other seeds and epochs differ", () => {
    const a = new DataLoader(data, { batchSize: 8, seed: 3 });
    const b = new DataLoader(data, { batchSize: 8, seed: 3 });
    const c = new DataLoader(data, { batchSize: 8, seed: 4 });
    assert.deepEqual(Array.from(a.order(0)), Array.from(b.order(0)));
    assert.deepEqual(Array.from(a.order(5)), Array.from(b.order(5)));
    assert.notDeepEqual(Array.from(a.order(0)), Array.from(a.order(1)));
    assert.notDeepEqual(Array.from(a.order(0)), Array.from(c.order(0)));
    const identity = Array.from({ length: 100 }, (_, i) => i);
    assert.notDeepEqual(Array.from(a.order(0)), identity);
    assert.deepEqual(Array.from(new DataLoader(data, { batchSize: 8, shuffle: false }).order(3)), identity);
  });

  test("every index exactly once per epoch; the last batch holds the remainder", () => {
    const loader = new DataLoader(data, { batchSize: 8, seed: 1 });
    assert.equal(loader.length, 13);
    for (const epoch of [0, 1, 7]) {
      const batches = indicesOf(loader.iterate({ epoch, endEpoch: epoch + 1 }));
      assert.deepEqual(batches.map((b) => b.length), [...new Array(12).fill(8), 4]);
      assert.deepEqual(batches.flat().sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
    }
  });

  test("dropLast: full batches only, no index twice, the remainder left out", () => {
    const loader = new DataLoader(data, { batchSize: 8, seed: 1, dropLast: true });
    assert.equal(loader.length, 12);
    const seen = indicesOf(loader.iterate({ endEpoch: 1 })).flat();
    assert.equal(seen.length, 96);
    assert.equal(new Set(seen).size, 96);
    assert.deepEqual(seen, Array.from(loader.order(0).subarray(0, 96)));
    assert.throws(() => new DataLoader(data, { batchSize: 101, dropLast: true }), /leaves no batch/);
  });

  test("resuming at (epoch, position) gives the same remaining batches, images and flips included", () => {
    const options = { batchSize: 16, seed: 9, flipProbability: 0.5 };
    const full = Array.from(new DataLoader(data, options).iterate({ endEpoch: 3 }));
    const resumedLoader = new DataLoader(data, options); // a fresh process: nothing cached
    const at = resumedLoader.locate(10); // epoch 1, position 3
    assert.deepEqual(at, { epoch: 1, position: 3 });
    const resumed = Array.from(resumedLoader.iterate({ ...at, endEpoch: 3 }));
    assert.equal(resumed.length, full.length - 10);
    resumed.forEach((r, k) => {
      const f = full[10 + k]!;
      assert.deepEqual([r.epoch, r.position, r.indices], [f.epoch, f.position, f.indices]);
      assert.ok(torch.equal(r.images, f.images), `batch ${10 + k}: images differ`);
      assert.deepEqual(r.labels, f.labels);
    });
    torch.dispose([full.map((b) => b.images), resumed.map((b) => b.images)]);
  });

  test("batches carry images and labels of their indices", () => {
    const loader = new DataLoader(data, { batchSize: 4, seed: 2 });
    const { images, indices, labels } = loader.batch(0, 0);
    assert.deepEqual(images.shape, [4, 1, 3, 3]);
    assert.ok(torch.equal(images, data.getBatch(indices)));
    assert.deepEqual(Array.from(labels!), indices.map((i) => i % 10));
  });

  test("flipProbability 1 mirrors every image; 0.5 is reproducible per seed and leaves torch's generator alone", () => {
    const indices = new DataLoader(data, { batchSize: 10, seed: 5 }).batchIndices(0, 0);
    const mirrored = new DataLoader(data, { batchSize: 10, seed: 5, flipProbability: 1 }).batch(0, 0);
    assert.ok(torch.equal(mirrored.images, data.getBatch(indices).flip(3)));

    const flips = (seed: number): boolean[] => {
      const loader = new DataLoader(data, { batchSize: 100, seed, shuffle: false, flipProbability: 0.5 });
      const x = loader.batch(0, 0).images.toTypedArray();
      const plain = data.getBatch(loader.batchIndices(0, 0)).toTypedArray();
      // each 3x3 sample's first row: mirrored or not
      return Array.from({ length: 100 }, (_, i) => {
        const same = [0, 1, 2].every((k) => x[i * 9 + k] === plain[i * 9 + k]);
        const mirror = [0, 1, 2].every((k) => x[i * 9 + k] === plain[i * 9 + 2 - k]);
        assert.ok(same || mirror, `image ${i} is neither itself nor its mirror`);
        return !same;
      });
    };
    const a = flips(11);
    assert.deepEqual(flips(11), a);
    assert.notDeepEqual(flips(12), a);
    const n = a.filter(Boolean).length;
    assert.ok(n > 30 && n < 70, `${n} of 100 flipped`);

    torch.manualSeed(42);
    const before = torch.rand([4]).toArray();
    torch.manualSeed(42);
    new DataLoader(data, { batchSize: 10, seed: 1, flipProbability: 0.5 }).batch(0, 0);
    assert.deepEqual(torch.rand([4]).toArray(), before);
  });

  test("a batch leaves only its images alive", () => {
    const loader = new DataLoader(data, { batchSize: 10, seed: 3, flipProbability: 0.5 });
    const before = torch.memory().numTensors;
    const { images } = loader.batch(2, 1);
    assert.equal(torch.memory().numTensors, before + 1);
    images.dispose();
    assert.equal(torch.memory().numTensors, before);
  });

  test("bad options and positions are errors", () => {
    assert.throws(() => new DataLoader(data, { batchSize: 0 }), /batchSize must be a positive integer/);
    assert.throws(() => new DataLoader(data, { batchSize: 4, flipProbability: 2 }), /flipProbability must be in \[0, 1\]/);
    assert.throws(() => new DataLoader(data, { batchSize: 4 }).batch(0, 25), /position 25 is out of range \(an epoch has 25 batches\)/);
    assert.throws(() => data.getBatch([100]), /index 100 is out of range/);
  });
});
