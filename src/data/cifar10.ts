// CIFAR-10's binary version (cifar-10-binary.tar.gz): each file is a run of 3073-byte records,
// one label byte then a 32x32 RGB image as three 1024-byte planes (CHW).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatasetError, Uint8ImageDataset, type SampleOptions } from "./dataset.js";

export const CIFAR10_CLASSES = [
  "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
] as const;

const SIDE = 32;
const IMAGE_BYTES = 3 * SIDE * SIDE;
const RECORD_BYTES = 1 + IMAGE_BYTES;

export const CIFAR10_TRAIN_FILES = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
export const CIFAR10_TEST_FILES = ["test_batch.bin"];

/** Splits binary records into images (CHW) and labels, checking sizes and label range. */
export function parseCifar10(bytes: Uint8Array, name = "CIFAR-10 data"): { images: Uint8Array; labels: Int32Array } {
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0)
    throw new DatasetError(`${name}: ${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte records (1 label + 3x32x32 image)`);
  const count = bytes.length / RECORD_BYTES;
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * RECORD_BYTES;
    const label = bytes[at]!;
    if (label > 9) throw new DatasetError(`${name}: record ${i} has label ${label}, expected 0..9 (is this the CIFAR-100 or the Python version?)`);
    labels[i] = label;
    images.set(bytes.subarray(at + 1, at + RECORD_BYTES), i * IMAGE_BYTES);
  }
  return { images, labels };
}

export interface Cifar10Options extends Partial<SampleOptions> {
  split?: "train" | "test";
}

/**
 * CIFAR-10 from a folder of binary batches (the folder itself or its cifar-10-batches-bin
 * subfolder), with the records' class labels (CIFAR10_CLASSES). Defaults: 3 channels at 32x32, so no resizing.
 */
export function cifar10(dir: string, options: Cifar10Options = {}): Uint8ImageDataset {
  const { split = "train", sampleSize = SIDE, channels = 3, resize = "bilinear" } = options;
  const files = split === "train" ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const root = [dir, join(dir, "cifar-10-batches-bin")].find((d) => existsSync(join(d, files[0]!)));
  if (root === undefined)
    throw new DatasetError(`cannot read dataset cifar10 at ${dir}: ${files[0]} not found; expected the binary batches (${files.join(", ")}) of cifar-10-binary.tar.gz`);
  const parts = files.map((f) => {
    const path = join(root, f);
    if (!existsSync(path)) throw new DatasetError(`cannot read dataset cifar10 at ${dir}: ${f} is missing; expected ${files.join(", ")}`);
    return parseCifar10(readFileSync(path), path);
  });
  const count = parts.reduce((n, p) => n + p.labels.length, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  let n = 0;
  for (const p of parts) {
    images.set(p.images, n * IMAGE_BYTES);
    labels.set(p.labels, n);
    n += p.labels.length;
  }
  return new Uint8ImageDataset(images, { count, channels: 3, height: SIDE, width: SIDE }, { sampleSize, channels, resize }, {
    labels,
    classes: CIFAR10_CLASSES,
    name: `${split === "train" ? "cifar10" : "cifar10-test"}:${dir}`,
  });
}
