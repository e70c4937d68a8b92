// Fashion-MNIST (Zalando): 28x28 grayscale clothing images in IDX files, 60k train, 10k test,
// 10 classes. Debian's dataset-fashion-mnist package installs it where we look by default.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatasetError, Uint8ImageDataset, type SampleOptions } from "./dataset.js";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, readIdx } from "./idx.js";

/** Where Debian's dataset-fashion-mnist installs the files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
] as const;

export type Split = "train" | "test";

export interface FashionMnistOptions extends Partial<SampleOptions> {
  split?: Split;
  /** Folder holding the four .gz (or unpacked) IDX files; default FASHION_MNIST_DIR. */
  root?: string;
}

/** The file of a split, gzipped as distributed or unpacked. */
function findFile(root: string, stem: string): string {
  for (const name of [`${stem}.gz`, stem]) {
    const path = join(root, name);
    if (existsSync(path)) return path;
  }
  throw new DatasetError(
    `cannot read dataset fashion-mnist: ${join(root, stem)}.gz not found; ` +
      `expected the IDX files of Debian's dataset-fashion-mnist package (install it: apt-get install dataset-fashion-mnist, or run scripts/setup.sh)`,
  );
}

/**
 * Fashion-MNIST as [-1, 1] samples, with their class labels (FASHION_MNIST_CLASSES). Defaults:
 * train split, 1 channel, sample size 32 reached by padding 2 background pixels on each side
 * (the DDPM convention); a sample size below 28 resizes bilinearly instead.
 */
export function fashionMnist(options: FashionMnistOptions = {}): Uint8ImageDataset {
  const { split = "train", root = FASHION_MNIST_DIR, sampleSize = 32, channels = 1 } = options;
  const prefix = split === "train" ? "train" : "t10k";
  const images = readIdx(findFile(root, `${prefix}-images-idx3-ubyte`), IDX_IMAGES_MAGIC);
  const labelFile = findFile(root, `${prefix}-labels-idx1-ubyte`);
  const labels = readIdx(labelFile, IDX_LABELS_MAGIC);
  const [count, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) throw new DatasetError(`cannot read dataset fashion-mnist: ${count} images but ${labels.dims[0]} labels`);
  const bad = labels.data.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new DatasetError(`cannot read dataset fashion-mnist: ${labelFile}: label ${bad} is ${labels.data[bad]}, expected 0..9`);
  const resize = options.resize ?? (sampleSize >= Math.max(height, width) ? "pad" : "bilinear");
  return new Uint8ImageDataset(images.data, { count, channels: 1, height, width }, { sampleSize, channels, resize }, {
    labels: Int32Array.from(labels.data),
    classes: FASHION_MNIST_CLASSES,
    name: split === "train" ? "fashion-mnist" : "fashion-mnist:test",
  });
}
