// The calibration batch of the gradient criteria: images and one fixed noise tensor, drawn from a
// dataset with a seed, or read from a safetensors file (`images` in [-1, 1], `noise`) so that a
// pruning run can be repeated exactly by another tool.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { DataLoader, openDataset } from "../data/index.js";
import { loadFile, saveFile } from "../io/index.js";
import type { UNet2DConfig } from "../models/index.js";

export interface Calibration {
  images: Tensor;
  noise: Tensor;
}

/** `batch` images of `spec` in a seeded shuffled order, and noise from torch's generator seeded with `seed`. */
export function drawCalibration(spec: string, config: UNet2DConfig, batch: number, seed: number): Calibration {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`calibration batch must be a positive integer, got ${batch}`);
  const dataset = openDataset(spec, { sampleSize: config.sample_size, channels: config.in_channels });
  if (batch > dataset.length) throw new RangeError(`calibration batch ${batch} is larger than ${spec} (${dataset.length} images)`);
  const { images } = new DataLoader(dataset, { batchSize: batch, seed }).batch(0, 0);
  torch.manualSeed(seed);
  const calibration = { images: torch.keep(images), noise: torch.keep(torch.randn(images.shape as number[])) };
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

function disposeCalibration({ images, noise }: Calibration): void {
  images.dispose();
  noise.dispose();
}

/** Reads `images` and `noise` from a safetensors file and checks them against the model. */
export function loadCalibration(path: string, config: UNet2DConfig): Calibration {
  const tensors = loadFile(path);
  const images = tensors.get("images");
  const noise = tensors.get("noise");
  const rest = [...tensors].filter(([k]) => k !== "images" && k !== "noise");
  for (const [, t] of rest) t.dispose();
  const expected = `[B, ${config.in_channels}, ${config.sample_size}, ${config.sample_size}]`;
  const fail = (why: string): never => {
    images?.dispose();
    noise?.dispose();
    throw new Error(`${path}: ${why}; a calibration file holds "images" (in [-1, 1]) and "noise", both ${expected}`);
  };
  if (!images || !noise) return fail(`missing ${!images ? '"images"' : '"noise"'}`);
  const shape = (t: Tensor) => `[${t.shape.join(", ")}]`;
  if (shape(images) !== shape(noise)) return fail(`images ${shape(images)} and noise ${shape(noise)} differ in shape`);
  if (images.ndim !== 4 || images.shape[1] !== config.in_channels || images.shape[2] !== config.sample_size || images.shape[3] !== config.sample_size)
    return fail(`images are ${shape(images)} but the model takes ${expected}`);
  const floats = (t: Tensor) => torch.keep(t.to("float32"));
  const out = { images: floats(images), noise: floats(noise) };
  images.dispose();
  noise.dispose();
  const why = whyUnusable(out);
  if (why) {
    disposeCalibration(out);
    throw new CalibrationError(`${path}: this calibration batch cannot score channels: ${why}; a calibration file holds "images" (in [-1, 1]) and "noise", both ${expected}`);
  }
  return out;
}

export function saveCalibration(path: string, { images, noise }: Calibration): void {
  saveFile({ images, noise }, path);
}
