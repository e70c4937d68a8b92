// A folder of images (searched recursively), like diffusers' "imagefolder" datasets. Files are
// sorted by path so that an index means the same image on every machine. Small folders are
// decoded once up front; large ones are decoded batch by batch.
import { readdirSync, statSync } from "node:fs";
import { extname, join, relative } from "node:path";
import { readImage, type Image } from "../io/png.js";
import type * as torch from "../torch/index.js";
import { checkIndex, checkSample, collate, DatasetError, toSample, type ImageDataset, type SampleOptions } from "./dataset.js";
import type { ChwImage } from "./transforms.js";

export const IMAGE_EXTENSIONS: readonly string[] = [".png", ".jpg", ".jpeg"];

/** Decoded samples up to this size are kept in memory (uint8) unless `eager` says otherwise. */
const EAGER_LIMIT_BYTES = 256 * 2 ** 20;

const cannotRead = (root: string, why: string): DatasetError =>
  new DatasetError(`cannot read dataset folder:${root}: ${why}; expected a folder of PNG or JPEG images (${IMAGE_EXTENSIONS.join(", ")}), searched recursively`);

/** Image files under `root`, recursively, sorted by path relative to root; hidden entries skipped. */
export function listImageFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      // Follow symlinks: stat says what they point at.
      const isDir = entry.isDirectory() || (entry.isSymbolicLink() && statSync(path).isDirectory());
      if (isDir) walk(path);
      else if (IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) files.push(path);
    }
  };
  walk(root);
  // Code-point order, not the locale's, so the order is the same everywhere.
  const key = new Map(files.map((f) => [f, relative(root, f)]));
  return files.sort((a, b) => (key.get(a)! < key.get(b)! ? -1 : key.get(a)! > key.get(b)! ? 1 : 0));
}

/** An io Image (HWC) in torch's CHW layout. */
export function imageToChw(image: Image): ChwImage {
  const { width, height, channels, data } = image;
  const plane = width * height;
  const out = new Uint8Array(channels * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) out[c * plane + i] = data[i * channels + c]!;
  return { channels, height, width, data: out };
}

export interface ImageFolderOptions extends SampleOptions {
  /** Decode every image when opening (default: when the samples take at most 256 MiB as uint8). */
  eager?: boolean;
}

function loadSample(path: string, sample: SampleOptions): ChwImage {
  let image: Image;
  try {
    image = readImage(path);
  } catch (err) {
    const message = (err as Error).message;
    // io's messages name the file already
    throw new DatasetError(`cannot decode image ${message.startsWith(path) ? message : `${path}: ${message}`}`);
  }
  return toSample(imageToChw(image), sample);
}

/**
 * The images under a folder as [-1, 1] samples of channels x sampleSize^2. Eager: every image
 * decoded and fitted once, kept as uint8; lazy: decoded again for each batch.
 */
export class ImageFolder implements ImageDataset {
  /** The image files, in index order. */
  readonly files: readonly string[];
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly #sample: SampleOptions;
  readonly #cache: Uint8Array | null;

  constructor(files: readonly string[], sample: SampleOptions, eager: boolean) {
    this.files = files;
    this.#sample = sample;
    this.length = files.length;
    this.channels = sample.channels;
    this.height = this.width = sample.sampleSize;
    this.#cache = null;
    if (eager) {
      const per = this.#bytesPerSample();
      const cache = new Uint8Array(files.length * per);
      files.forEach((f, i) => cache.set(loadSample(f, sample).data, i * per));
      this.#cache = cache;
    }
  }

  #bytesPerSample(): number {
    return this.channels * this.height * this.width;
  }

  /** The sample at `index` as uint8 CHW. */
  image(index: number): ChwImage {
    checkIndex(index, this.length);
    if (this.#cache === null) return loadSample(this.files[index]!, this.#sample);
    const per = this.#bytesPerSample();
    return { channels: this.channels, height: this.height, width: this.width, data: this.#cache.subarray(index * per, (index + 1) * per) };
  }

  getBatch(indices: readonly number[]): torch.Tensor {
    return collate(indices, (i) => this.image(i), this.channels, this.height);
  }
}

/** Opens the folder `root`; default resize: bilinear shorter side + centre crop (diffusers' training transform). */
export function imageFolder(root: string, options: ImageFolderOptions): ImageFolder {
  const sample: SampleOptions = { sampleSize: options.sampleSize, channels: options.channels, resize: options.resize ?? "bilinear" };
  checkSample(sample);
  let files: string[];
  try {
    if (!statSync(root).isDirectory()) throw cannotRead(root, "not a folder");
    files = listImageFiles(root);
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw cannotRead(root, (err as Error).message);
  }
  if (files.length === 0) throw cannotRead(root, "no image files found");
  const eager = options.eager ?? files.length * sample.channels * sample.sampleSize ** 2 <= EAGER_LIMIT_BYTES;
  return new ImageFolder(files, sample, eager);
}
