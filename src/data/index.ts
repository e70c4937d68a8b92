// Datasets by name: the spec strings the CLI and run configs use.
import { cifar10 } from "./cifar10.js";
import { DatasetError, type ImageDataset, type SampleOptions } from "./dataset.js";
import { fashionMnist, FASHION_MNIST_DIR } from "./fashion-mnist.js";
import { imageFolder } from "./image-folder.js";

export * from "./cifar10.js";
export * from "./dataset.js";
export * from "./fashion-mnist.js";
export * from "./idx.js";
export * from "./image-folder.js";
export * from "./loader.js";
export * from "./transforms.js";

export const DATASET_SPECS = [
  "fashion-mnist",
  "fashion-mnist:test",
  "folder:<path>",
  "cifar10:<dir>",
  "cifar10-test:<dir>",
] as const;

/** The folder a dataset spec reads (folder:<dir>, cifar10:<dir>), or undefined for the built-in ones. */
export function datasetPath(spec: string | undefined): string | undefined {
  const m = spec ? /^(folder|cifar10|cifar10-test):(.+)$/.exec(spec) : null;
  return m ? m[2] : undefined;
}

export interface OpenDatasetOptions extends SampleOptions {
  /** Image folders: decode all images up front (default: when they fit in 256 MiB). */
  eager?: boolean;
  /** Where the Fashion-MNIST IDX files are; default FASHION_MNIST_DIR. */
  fashionMnistRoot?: string;
}

/** What each kind of spec expects, for error messages. */
const EXPECTED: Record<string, string> = {
  "fashion-mnist": `the Fashion-MNIST IDX files in ${FASHION_MNIST_DIR} (Debian package dataset-fashion-mnist; scripts/setup.sh installs it)`,
  folder: "a folder of PNG or JPEG images",
  cifar10: "a folder with CIFAR-10's binary batches data_batch_1..5.bin and test_batch.bin",
};

/**
 * Opens a dataset by spec: "fashion-mnist" (train split), "fashion-mnist:test",
 * "folder:<path>", "cifar10:<dir>" (train batches) or "cifar10-test:<dir>".
 */
export function openDataset(spec: string, options: OpenDatasetOptions): ImageDataset {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? "" : spec.slice(colon + 1);
  const sample: SampleOptions = { sampleSize: options.sampleSize, channels: options.channels };
  if (options.resize !== undefined) sample.resize = options.resize;
  const open = (): ImageDataset => {
    switch (kind) {
      case "fashion-mnist":
        if (arg !== "" && arg !== "train" && arg !== "test") break;
        return fashionMnist({ ...sample, split: arg === "test" ? "test" : "train", root: options.fashionMnistRoot ?? FASHION_MNIST_DIR });
      case "folder":
        if (arg === "") break;
        return imageFolder(arg, options.eager === undefined ? sample : { ...sample, eager: options.eager });
      case "cifar10":
      case "cifar10-test":
        if (arg === "") break;
        return cifar10(arg, { ...sample, split: kind === "cifar10" ? "train" : "test" });
    }
    throw new DatasetError(`unknown dataset spec "${spec}"; expected one of: ${DATASET_SPECS.join(", ")}`);
  };
  try {
    return open();
  } catch (err) {
    // Bad options (RangeError) are the caller's, not the data's.
    if (err instanceof DatasetError || err instanceof RangeError) throw err;
    const expected = EXPECTED[kind.replace("-test", "")] ?? DATASET_SPECS.join(", ");
    throw new DatasetError(`cannot read dataset ${spec}: ${(err as Error).message}; expected ${expected}`);
  }
}
