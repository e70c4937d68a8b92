// The calibration batch of the gradient criteria: images and one fixed noise tensor (and the
// images' class labels for a class-conditional model), drawn from a dataset with a seed, or read
// from a safetensors file (`images` in [-1, 1], `noise`, `labels`) so that a pruning run can be
// repeated exactly by another tool.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { DataLoader, openDataset } from "../data/index.js";
import { loadFile, saveFile } from "../io/index.js";
import { classLabelTensor, conditioningName, isClassConditional } from "../diffusion/index.js";
import type { UNet2DConfig } from "../models/index.js";

export interface Calibration {
  images: Tensor;
  noise: Tensor;
  /** The images' classes, int64 [B]: present exactly when the model is class-conditional. */
  labels?: Tensor;
}

/**
 * The images of a calibration batch when they are not the model's input: a latent UNet's batch
 * holds its autoencoder's images (encoded before use) and noise of the latents' shape.
 */
export interface CalibrationImages {
  channels: number;
  size: number;
}

const modelInput = (config: UNet2DConfig): CalibrationImages => ({ channels: config.in_channels, size: config.sample_size });

/**
 * `batch` images of `spec` (the model's input, or `imageShape`) in a seeded shuffled order, and
 * noise of the model's input shape from torch's generator seeded with `seed`.
 */
export function drawCalibration(spec: string, config: UNet2DConfig, batch: number, seed: number, imageShape: CalibrationImages = modelInput(config)): Calibration {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`calibration batch must be a positive integer, got ${batch}`);
  const dataset = openDataset(spec, { sampleSize: imageShape.size, channels: imageShape.channels });
  if (batch > dataset.length) throw new RangeError(`calibration batch ${batch} is larger than ${spec} (${dataset.length} images)`);
  const conditional = isClassConditional(config);
  if (conditional && dataset.labels === undefined)
    throw new CalibrationError(
      `${spec} has no class labels, but the model is class-conditional (${conditioningName(config)}); ` +
        `draw the calibration batch from labelled data: fashion-mnist, cifar10:<dir>, or folder:<dir> with one subfolder per class`,
    );
  const { images, labels } = new DataLoader(dataset, { batchSize: batch, seed }).batch(0, 0);
  let labelTensor: Tensor | undefined;
  try {
    labelTensor = conditional ? torch.keep(classLabelTensor(config, labels, batch, `calibration batch of ${spec}`)!) : undefined;
  } catch (err) {
    images.dispose();
    throw err;
  }
  torch.manualSeed(seed);
  const calibration: Calibration = { images: torch.keep(images), noise: torch.keep(torch.randn([images.shape[0]!, config.in_channels, config.sample_size, config.sample_size])) };
  if (labelTensor !== undefined) calibration.labels = labelTensor;
  const why = whyUnusable(calibration);
  if (why) {
    disposeCalibration(calibration);
    throw new CalibrationError(`${spec}: the calibration batch drawn (${batch} images, seed ${seed}) cannot score channels: ${why}; use a dataset of real images`);
  }
  return calibration;
}

export class CalibrationError extends Error {
  override name = "CalibrationError";
}

/** Images beyond [-1, 1] by more than rounding are in another range ([0, 1] is fine, [0, 255] is not). */
const IMAGE_LIMIT = 1.001;

/**
 * Why a batch cannot score channels, or null: no images, a NaN or Inf (every loss would be NaN
 * and no timestep would stop the loop), all-zero images or noise (nothing to denoise), or
 * images outside [-1, 1].
 */
export function whyUnusable({ images, noise }: Calibration): string | null {
  if (images.shape[0] === 0) return "it holds no images (batch 0)";
  return torch.tidy(() => {
    for (const [name, t] of [["images", images], ["noise", noise]] as const) {
      const bad = t.isfinite().logicalNot().sum().item();
      if (bad > 0) return `${name} hold ${bad} NaN or Inf values (of ${t.numel})`;
      if (t.abs().max().item() === 0) return `${name} are all zeros`;
    }
    const peak = images.abs().max().item();
    if (peak > IMAGE_LIMIT) return `images reach ${peak}, outside [-1, 1] (8-bit pixels x map to x / 127.5 - 1)`;
    return null;
  });
}

function disposeCalibration({ images, noise, labels }: Calibration): void {
  images.dispose();
  noise.dispose();
  labels?.dispose();
}

/**
 * Reads `images` and `noise` (and `labels`, int64 [B], which a class-conditional model needs and
 * an unconditional one ignores) from a safetensors file and checks them against the model.
 */
export function loadCalibration(path: string, config: UNet2DConfig, imageShape: CalibrationImages = modelInput(config)): Calibration {
  const tensors = loadFile(path);
  const images = tensors.get("images");
  const noise = tensors.get("noise");
  const rawLabels = isClassConditional(config) ? tensors.get("labels") : undefined;
  const rest = [...tensors].filter(([k, t]) => k !== "images" && k !== "noise" && t !== rawLabels);
  for (const [, t] of rest) t.dispose();
  const expected = `[B, ${imageShape.channels}, ${imageShape.size}, ${imageShape.size}]`;
  const expectedNoise = `[B, ${config.in_channels}, ${config.sample_size}, ${config.sample_size}]`;
  const holds = expected === expectedNoise ? `"images" (in [-1, 1]) and "noise", both ${expected}` : `"images" ${expected} (in [-1, 1]) and "noise" ${expectedNoise}`;
  const fail = (why: string): never => {
    images?.dispose();
    noise?.dispose();
    rawLabels?.dispose();
    throw new Error(`${path}: ${why}; a calibration file holds ${holds}`);
  };
  if (!images || !noise) return fail(`missing ${!images ? '"images"' : '"noise"'}`);
  const shape = (t: Tensor) => `[${t.shape.join(", ")}]`;
  if (expected === expectedNoise && shape(images) !== shape(noise)) return fail(`images ${shape(images)} and noise ${shape(noise)} differ in shape`);
  if (images.ndim !== 4 || images.shape[1] !== imageShape.channels || images.shape[2] !== imageShape.size || images.shape[3] !== imageShape.size)
    return fail(`images are ${shape(images)} but the model takes ${expected}`);
  if (noise.ndim !== 4 || noise.shape[0] !== images.shape[0] || noise.shape.slice(1).join() !== [config.in_channels, config.sample_size, config.sample_size].join())
    return fail(`noise is ${shape(noise)} for ${images.shape[0]} images; it must be ${expectedNoise}`);
  let labels: Tensor | undefined;
  if (isClassConditional(config)) {
    if (!rawLabels) return fail(`missing "labels": the model is class-conditional (${conditioningName(config)}), so its calibration images need their class labels (int64 [B])`);
    try {
      labels = torch.keep(classLabelTensor(config, rawLabels, images.shape[0]!, "labels")!);
    } catch (err) {
      return fail((err as Error).message);
    }
    rawLabels.dispose();
  }
  const floats = (t: Tensor) => torch.keep(t.to("float32"));
  const out: Calibration = { images: floats(images), noise: floats(noise) };
  if (labels !== undefined) out.labels = labels;
  images.dispose();
  noise.dispose();
  const why = whyUnusable(out);
  if (why) {
    disposeCalibration(out);
    throw new CalibrationError(`${path}: this calibration batch cannot score channels: ${why}; a calibration file holds ${holds}`);
  }
  return out;
}

export function saveCalibration(path: string, { images, noise, labels }: Calibration): void {
  saveFile(labels === undefined ? { images, noise } : { images, noise, labels }, path);
}
