// Consistency (Diff-Pruning's SSIM figure): the same initial noise through two models with the
// deterministic DDIM sampler (eta 0; by default the paper's, skip "uniform"), and how alike their
// images come out. SSIM is taken on images mapped from [-1, 1] to [0, 1] and clamped (what a
// saved PNG holds), with data_range 1; MSE on the same [0, 1] images.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import { generate, samplingScheduler, type Scheduler, type SkipType } from "../diffusion/index.js";
import { ssim } from "./ssim.js";

export interface Consistency {
  /** Mean SSIM over the images. */
  ssim: number;
  /** Mean squared error over all pixels, on [0, 1] images. */
  mse: number;
  /** SSIM of each image pair. */
  perImage: number[];
}

/** Compares two sample batches [N, C, H, W] in model space ([-1, 1]). */
export function compareSamples(a: Tensor, b: Tensor): Consistency {
  if (a.shape.join() !== b.shape.join()) throw new Error(`compareSamples: the sample batches differ in shape: [${a.shape.join(", ")}] vs [${b.shape.join(", ")}]`);
  return torch.tidy(() => {
    const toUnit = (x: Tensor) => x.float().add(1).div(2).clamp(0, 1);
    const [x, y] = [toUnit(a), toUnit(b)];
    const perImage = ssim(x, y).toArray();
    return { ssim: perImage.reduce((s, v) => s + v, 0) / perImage.length, mse: torch.mseLoss(x, y).item(), perImage };
  });
}

export interface ConsistencyOptions {
  /** DDIM steps; default 100. */
  steps?: number;
  /** DDIM's timesteps (see SkipType); default "uniform", the paper's sampler. */
  skip?: SkipType;
  /** Images denoised at once; default 64. */
  batchSize?: number;
}

/**
 * Samples `noise` [N, C, H, W] through both models with DDIM (eta 0) on `scheduler`'s training
 * schedule, and compares the results. Returns the samples too (for FID), which the caller disposes.
 */
export function consistency(
  model: UNet2DModel,
  reference: UNet2DModel,
  scheduler: Scheduler,
  noise: Tensor,
  { steps = 100, skip = "uniform", batchSize = 64 }: ConsistencyOptions = {},
): Consistency & { samples: Tensor; referenceSamples: Tensor } {
  const options = { numInferenceSteps: steps, eta: 0, skip, batchSize };
  const samples = generate(model, samplingScheduler(scheduler, "ddim"), noise, options);
  const referenceSamples = generate(reference, samplingScheduler(scheduler, "ddim"), noise, options);
  return { ...compareSamples(samples, referenceSamples), samples, referenceSamples };
}
