// Batches in a seeded shuffled order, epoch by epoch, as torch's DataLoader(shuffle=True).
// The order of an epoch and the flips of a batch are pure functions of (seed, epoch, position),
// drawn from a small counter-based generator here rather than torch's global one: a run resumed
// from a checkpoint at (epoch, position) sees exactly the batches it would have seen, without
// saving generator state, and reading data never disturbs the training noise stream.
import * as torch from "../torch/index.js";
import type { ImageDataset } from "./dataset.js";
import { flipWhere } from "./transforms.js";

export interface DataLoaderOptions {
  batchSize: number;
  /** Seed of the shuffle and of the flips; default 0. */
  seed?: number;
  /** Default true; false keeps the dataset's order. */
  shuffle?: boolean;
  /**
   * Default false, as torch's DataLoader: the last batch of an epoch holds the remainder and may
   * be smaller. With true, the remainder is skipped (each epoch a different remainder, since the
   * order changes) and every batch has exactly batchSize images.
   */
  dropLast?: boolean;
  /** Probability of mirroring each image horizontally (RandomHorizontalFlip); default 0. */
  flipProbability?: number;
}

export interface Batch {
  /** float32 [B, C, H, W] in [-1, 1]; the caller disposes it. */
  images: torch.Tensor;
  /** Dataset indices of the images. */
  indices: number[];
  /** Their labels, when the dataset has labels. */
  labels?: Int32Array;
  epoch: number;
  /** This batch's number within its epoch (0-based). */
  position: number;
}

/** A bijective 32-bit mixer (Chris Wellons' lowbias32). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Uniform floats in [0, 1) determined by the keys alone. */
function uniformStream(keys: number[]): () => number {
  let state = 0x243f6a88;
  for (const k of keys) state = mix32(state ^ mix32(k >>> 0) ^ mix32(Math.floor(k / 2 ** 32) + 0x9e3779b9));
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return mix32(state) / 2 ** 32;
  };
}

const ORDER = 1;
const FLIP = 2;

export class DataLoader {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly flipProbability: number;
  #cached: { epoch: number; order: Uint32Array } | null = null;

  constructor(dataset: ImageDataset, options: DataLoaderOptions) {
    const { batchSize, seed = 0, shuffle = true, dropLast = false, flipProbability = 0 } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`DataLoader: seed must be a non-negative integer, got ${seed}`);
    if (!(flipProbability >= 0 && flipProbability <= 1)) throw new RangeError(`DataLoader: flipProbability must be in [0, 1], got ${flipProbability}`);
    if (dropLast && batchSize > dataset.length)
      throw new RangeError(`DataLoader: batchSize ${batchSize} with dropLast leaves no batch from ${dataset.length} images`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = seed;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.flipProbability = flipProbability;
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The (epoch, position) of the `step`-th batch since the start of training. */
  locate(step: number): { epoch: number; position: number } {
    return { epoch: Math.floor(step / this.length), position: step % this.length };
  }

  /** Every dataset index once, in the order of `epoch` (a Fisher-Yates shuffle). */
  order(epoch: number): Uint32Array {
    if (this.#cached?.epoch === epoch) return this.#cached.order;
    const n = this.dataset.length;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (this.shuffle) {
      const u = uniformStream([ORDER, this.seed, epoch]);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(u() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    this.#cached = { epoch, order };
    return order;
  }

  /** Dataset indices of batch `position` of `epoch`. */
  batchIndices(epoch: number, position: number): number[] {
    if (!Number.isInteger(position) || position < 0 || position >= this.length)
      throw new RangeError(`DataLoader: batch position ${position} is out of range (an epoch has ${this.length} batches)`);
    const start = position * this.batchSize;
    return Array.from(this.order(epoch).subarray(start, Math.min(start + this.batchSize, this.dataset.length)));
  }

  /** Batch `position` of `epoch`, flips applied. */
  batch(epoch: number, position: number): Batch {
    const indices = this.batchIndices(epoch, position);
    let images = this.dataset.getBatch(indices);
    if (this.flipProbability > 0) {
      const u = uniformStream([FLIP, this.seed, epoch, position]);
      const flips = Uint8Array.from(indices, () => Number(u() < this.flipProbability));
      const flipped = torch.tidy(() => flipWhere(images, torch.tensor(flips, { dtype: "bool" })));
      images.dispose();
      images = flipped;
    }
    const labels = this.dataset.labels;
    const batch: Batch = { images, indices, epoch, position };
    if (labels !== undefined) batch.labels = Int32Array.from(indices, (i) => labels[i]!);
    return batch;
  }

  /**
   * Batches from (epoch, position) onwards, epoch after epoch, up to (not including) `endEpoch`
   * (default: forever). Resuming at a saved (epoch, position) repeats the original sequence.
   */
  *iterate({ epoch = 0, position = 0, endEpoch = Infinity }: { epoch?: number; position?: number; endEpoch?: number } = {}): Generator<Batch> {
    for (let e = epoch; e < endEpoch; e++)
      for (let p = e === epoch ? position : 0; p < this.length; p++) yield this.batch(e, p);
  }
}
