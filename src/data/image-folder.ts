// A folder of images (searched recursively), like diffusers' "imagefolder" datasets. Files are
// sorted by path so that an index means the same image on every machine. Small folders are
// decoded once up front; large ones are decoded batch by batch. A folder whose images all sit in
// subfolders is labelled as torchvision's ImageFolder labels it: one class per subfolder, in
// sorted order.
import { readdirSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { readImage, type Image } from "../io/png.js";
import type * as torch from "../torch/index.js";
import { checkIndex, checkLabelling, checkSample, collate, DatasetError, toSample, type ImageDataset, type Labelling, type SampleOptions } from "./dataset.js";
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
      const isDir = entry.isDirectory() || (entry.isSymbolicLink() && isFolder(path));
      if (isDir) walk(path);
      else if (IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) files.push(path);
    }
  };
  walk(root);
  const key = new Map(files.map((f) => [f, relative(root, f)]));
  return files.sort((a, b) => byCodePoint(key.get(a)!, key.get(b)!));
}

/** Code-point order, not the locale's, so the order is the same everywhere (and Python's sorted()). */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const isFolder = (path: string): boolean => statSync(path).isDirectory();

/**
 * Labels from class subfolders, as torchvision's ImageFolder: when no image sits directly in
 * `root`, each (non-hidden) subfolder is a class, sorted names numbered 0..K-1, and an image's
 * label is that of the subfolder it is under (at any depth). A subfolder without images still
 * takes its number, so the numbering is the same as torchvision's. Undefined for a flat folder.
 */
export function classFolderLabels(root: string, files: readonly string[]): Required<Labelling> | undefined {
  const top = files.map((f) => relative(root, f).split(sep));
  if (top.some((parts) => parts.length === 1)) return undefined;
  const classes = readdirSync(root)
    .filter((name) => !name.startsWith(".") && isFolder(join(root, name)))
    .sort(byCodePoint);
  if (classes.length === 0) return undefined;
  const index = new Map(classes.map((c, i) => [c, i]));
  return { labels: Int32Array.from(top, (parts) => index.get(parts[0]!)!), classes };
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
 * The images under a folder as [-1, 1] samples of channels x sampleSize^2, with class labels
 * when `labelling` gives them. Eager: every image decoded and fitted once, kept as uint8; lazy:
 * decoded again for each batch.
 */
export class ImageFolder implements ImageDataset {
  /** The image files, in index order. */
  readonly files: readonly string[];
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly name?: string;
  readonly labels?: Int32Array;
  readonly classes?: readonly string[];
  readonly #sample: SampleOptions;
  readonly #cache: Uint8Array | null;

  constructor(files: readonly string[], sample: SampleOptions, eager: boolean, { name, ...labelling }: Partial<Labelling> & { name?: string } = {}) {
    this.files = files;
    this.#sample = sample;
    this.length = files.length;
    this.channels = sample.channels;
    this.height = this.width = sample.sampleSize;
    if (name !== undefined) this.name = name;
    if (labelling.labels !== undefined) {
      const { labels, classes } = checkLabelling(labelling as Labelling, files.length, "ImageFolder");
      this.labels = labels;
      this.classes = classes;
    }
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

/**
 * Opens the folder `root`, labelled by its class subfolders when every image is in one (see
 * classFolderLabels); default resize: bilinear shorter side + centre crop (diffusers' training
 * transform).
 */
export function imageFolder(root: string, options: ImageFolderOptions): ImageFolder {
  const sample: SampleOptions = { sampleSize: options.sampleSize, channels: options.channels, resize: options.resize ?? "bilinear" };
  checkSample(sample);
  let files: string[];
  let labelling: Required<Labelling> | undefined;
  try {
    if (!isFolder(root)) throw cannotRead(root, "not a folder");
    files = listImageFiles(root);
    labelling = classFolderLabels(root, files);
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw cannotRead(root, (err as Error).message);
  }
  if (files.length === 0) throw cannotRead(root, "no image files found");
  const eager = options.eager ?? files.length * sample.channels * sample.sampleSize ** 2 <= EAGER_LIMIT_BYTES;
  return new ImageFolder(files, sample, eager, { name: `folder:${root}`, ...labelling });
}
