// The dataset interface every source implements, and the in-memory uint8 dataset that
// Fashion-MNIST, CIFAR-10 and small image folders share. Images stay uint8 in JS (Fashion-MNIST
// train is 47 MB so, 188 MB as float32) and become a float tensor one batch at a time.
import type * as torch from "../torch/index.js";
import { convertChannels, fitToSize, toNormalizedTensor, type ChwImage, type ResizeMode } from "./transforms.js";

export interface ImageDataset {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** What the data is, for messages: its spec (`fashion-mnist`, `folder:<dir>`) when it has one. */
  readonly name?: string;
  /** Class labels (one per image, each in 0..classes.length-1), when the data has them. */
  readonly labels?: Int32Array;
  /** The class names, label i naming classes[i] (so classes.length is the number of classes); set with labels. */
  readonly classes?: readonly string[];
  /** The images at `indices` as float32 [B, C, H, W] in [-1, 1], transforms applied. */
  getBatch(indices: readonly number[]): torch.Tensor;
}

/** What the model takes: square samples of `sampleSize` with `channels` channels. */
export interface SampleOptions {
  sampleSize: number;
  channels: number;
  /** How images reach the sample size; defaults per dataset (pad for 28x28 Fashion-MNIST). */
  resize?: ResizeMode;
}

/** Data that cannot be read, or is not what it claims to be. */
export class DatasetError extends Error {
  override name = "DatasetError";
}

/** An image converted to the sample's channels and size. */
export function toSample(img: ChwImage, { sampleSize, channels, resize = "bilinear" }: SampleOptions): ChwImage {
  return fitToSize(convertChannels(img, channels), sampleSize, resize);
}

/** Stacks the images at `indices` (each already channels x size x size) into a [-1, 1] batch. */
export function collate(indices: readonly number[], imageAt: (index: number) => ChwImage, channels: number, size: number): torch.Tensor {
  const per = channels * size * size;
  const bytes = new Uint8Array(indices.length * per);
  indices.forEach((index, b) => {
    const img = imageAt(index);
    if (img.data.length !== per) throw new Error(`collate(): image ${index} has ${img.data.length} bytes, expected ${per}`);
    bytes.set(img.data, b * per);
  });
  return toNormalizedTensor(bytes, [indices.length, channels, size, size]);
}

/** Rejects sample options no model takes, before any image is read. */
export function checkSample({ sampleSize, channels }: SampleOptions): void {
  if (!Number.isInteger(sampleSize) || sampleSize < 1) throw new RangeError(`sampleSize must be a positive integer, got ${sampleSize}`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`channels must be 1 (gray) or 3 (RGB), got ${channels}`);
}

/** Class labels with their class names. */
export interface Labelling {
  labels: Int32Array;
  /** Default: "0", "1", ... up to the largest label. */
  classes?: readonly string[];
}

/** The labels and class names of `count` images, checked: one label per image, each naming a class. */
export function checkLabelling({ labels, classes }: Labelling, count: number, what: string): { labels: Int32Array; classes: readonly string[] } {
  if (labels.length !== count) throw new RangeError(`${what}: ${labels.length} labels for ${count} images`);
  let max = -1;
  for (const l of labels) {
    if (l < 0) throw new RangeError(`${what}: class label ${l} is negative; labels are 0, 1, ...`);
    if (l > max) max = l;
  }
  const names = classes ?? Array.from({ length: max + 1 }, (_, i) => String(i));
  if (max >= names.length) throw new RangeError(`${what}: class label ${max} but only ${names.length} classes (${names.join(", ")})`);
  return { labels, classes: names };
}

export function checkIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) throw new RangeError(`index ${index} is out of range for a dataset of ${length} images`);
}

/** Source images of one size, stored uint8 [N, C, H, W]; fitted to the sample per batch. */
export class Uint8ImageDataset implements ImageDataset {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly name?: string;
  readonly labels?: Int32Array;
  readonly classes?: readonly string[];
  readonly #images: Uint8Array;
  readonly #source: { channels: number; height: number; width: number };
  readonly #sample: SampleOptions;

  /**
   * `images` holds `source.count` images of source.channels x source.height x source.width;
   * `labelling`, when the images have classes, one label each.
   */
  constructor(
    images: Uint8Array,
    source: { count: number; channels: number; height: number; width: number },
    sample: SampleOptions,
    { name, ...labelling }: Partial<Labelling> & { name?: string } = {},
  ) {
    const per = source.channels * source.height * source.width;
    if (images.length !== source.count * per)
      throw new RangeError(`Uint8ImageDataset: ${images.length} bytes, expected ${source.count} images x ${per}`);
    const labelled = labelling.labels === undefined ? undefined : checkLabelling(labelling as Labelling, source.count, "Uint8ImageDataset");
    checkSample(sample);
    if (sample.resize === "pad" && (source.height > sample.sampleSize || source.width > sample.sampleSize))
      throw new RangeError(`resize "pad" cannot fit ${source.height}x${source.width} images into ${sample.sampleSize}x${sample.sampleSize}; use "bilinear" or "nearest"`);
    this.#images = images;
    this.#source = { channels: source.channels, height: source.height, width: source.width };
    this.#sample = sample;
    this.length = source.count;
    this.channels = sample.channels;
    this.height = this.width = sample.sampleSize;
    if (name !== undefined) this.name = name;
    if (labelled !== undefined) {
      this.labels = labelled.labels;
      this.classes = labelled.classes;
    }
  }

  /** The source image at `index`, before conversion (a view, not a copy). */
  rawImage(index: number): ChwImage {
    checkIndex(index, this.length);
    const { channels, height, width } = this.#source;
    const per = channels * height * width;
    return { channels, height, width, data: this.#images.subarray(index * per, (index + 1) * per) };
  }

  getBatch(indices: readonly number[]): torch.Tensor {
    return collate(indices, (i) => toSample(this.rawImage(i), this.#sample), this.channels, this.height);
  }
}
