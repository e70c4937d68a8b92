// Gradients for the Taylor criteria. Diff-Pruning accumulates the denoising loss's gradients over
// the informative timesteps only: t = 0, 1, 2, ... on one fixed batch and one fixed noise, stopping
// after the first t whose loss falls below thr times the largest loss so far. Plain Taylor
// pruning accumulates over every timestep (the reference's loop with no early stop). A
// class-conditional model sees the calibration batch's labels. In a torch.distributed group each
// rank runs its share of the batch and the gradients are summed across ranks: the scores are
// those of one process (to float reduction order).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import { ClassLabelError, conditioningName, denoisingLoss, isClassConditional, type BaseScheduler } from "../diffusion/index.js";

export interface GradientOptions {
  /** The calibration batch, [B, C, H, W] in [-1, 1]. */
  images: Tensor;
  /** Fixed noise of the same shape. */
  noise: Tensor;
  /** The images' classes, int64 [B] (embeddings [B, D] for an "identity" model): required by a class-conditional model. */
  labels?: Tensor | undefined;
  /** The training schedule (add_noise and its number of timesteps). */
  scheduler: BaseScheduler;
  /** Stop at the first t whose loss < thr * max loss so far; null runs every timestep. */
  thr: number | null;
  /**
   * Whether that t's gradient is left out: ddpm_prune.py (diffusers codebase, the default)
   * back-propagates before it tests the loss; ddpm_exp/prune.py (DDPM codebase) tests first.
   */
  stopBeforeBackward?: boolean;
  onStep?: (t: number, loss: number, total: number) => void;
}

export interface GradientReport {
  /** The loss at t = 0, 1, ... up to the step that stopped the loop (T', or T' + 1 when it stopped before that step's backward). */
  losses: number[];
  /** The last timestep whose gradient was accumulated. */
  tPrime: number;
  /** The schedule's training timesteps (the loop's bound). */
  timesteps: number;
  thr: number | null;
}

/** Accumulates d(loss_t)/d(weights) into every parameter's .grad (zeroed first); the model is put in eval mode. */
export function accumulateGradients(model: UNet2DModel, options: GradientOptions): GradientReport {
  const { images, noise, labels, scheduler, thr, onStep, stopBeforeBackward = false } = options;
  if (images.ndim !== 4 || images.shape.join() !== noise.shape.join())
    throw new Error(`calibration images [${images.shape.join(", ")}] and noise [${noise.shape.join(", ")}] must both be [B, C, H, W] of one shape`);
  const c = model.config;
  if (images.shape[1] !== c.in_channels || images.shape[2] !== c.sample_size || images.shape[3] !== c.sample_size)
    throw new Error(`calibration images are [${images.shape.slice(1).join(", ")}] but the model takes [${c.in_channels}, ${c.sample_size}, ${c.sample_size}]`);
  if (thr !== null && !(thr >= 0 && thr < 1)) throw new RangeError(`thr must be in [0, 1), got ${thr}`);
  if (isClassConditional(c) && labels === undefined)
    throw new ClassLabelError(`the model is class-conditional (${conditioningName(c)}): its calibration batch needs class labels; draw it from a labelled dataset, or give "labels" (int64 [B]) in the calibration file`);
  if (!isClassConditional(c) && labels !== undefined) throw new ClassLabelError("the calibration batch has class labels, but the model is not class-conditional");
  if (labels !== undefined && labels.shape[0] !== images.shape[0])
    throw new ClassLabelError(`calibration labels [${labels.shape.join(", ")}] do not match the ${images.shape[0]} calibration images; give one label per image`);
  model.eval();
  const params = model.parameters();
  for (const p of params) p.grad = null;
  const shard = calibrationShard(images.shape[0]!);
  const part = (x: Tensor): Tensor => (shard ? x.narrow(0, shard.start, shard.count) : x);
  const [x0, eps, y] = [part(images), part(noise), labels && part(labels)];
  const total = scheduler.numTrainTimesteps;
  const losses: number[] = [];
  let max = 0;
  let t = 0;
  let stopped = false;
  for (; t < total; t++) {
    const loss = torch.tidy(() => {
      let l = denoisingLoss(model, scheduler, x0, eps, torch.full([x0.shape[0]!], t, { dtype: "int64" }), y);
      // the batch mean is the sum over ranks of each one's mean weighted by its share
      if (shard) l = l.mul(shard.count / shard.batch);
      const value = shard ? summedAcrossRanks(l) : l.item();
      if (thr !== null) {
        if (value > max) max = value;
        stopped = value < max * thr;
      }
      if (!(stopped && stopBeforeBackward)) l.backward();
      return value;
    });
    losses.push(loss);
    onStep?.(t, loss, total);
    if (stopped) break;
  }
  if (shard) {
    torch.tidy(() => torch.distributed.allReduce(params.map((p) => p.grad).filter((g): g is Tensor => g !== null), "sum"));
    [x0, eps, y].forEach((x) => x?.dispose());
  }
  const last = stopped && stopBeforeBackward ? t - 1 : t;
  return { losses, tPrime: Math.min(last, total - 1), timesteps: total, thr };
}

interface Shard {
  /** The first image of this rank's share, and how many it has. */
  start: number;
  count: number;
  batch: number;
}

/** This rank's contiguous share of a batch of `batch` (torch.tensor_split's), or null outside a group. */
function calibrationShard(batch: number): Shard | null {
  const dist = torch.distributed;
  if (!dist.inGroup()) return null;
  const world = dist.getWorldSize();
  if (batch < world)
    throw new RangeError(`the calibration batch has ${batch} images for ${world} processes: each needs at least one; draw a batch of ${world} or more (--calib-batch), or use fewer processes`);
  return { ...dist.shardRange(batch), batch };
}

/** The sum of a scalar over every rank (the same number on all). */
function summedAcrossRanks(l: Tensor): number {
  const value = l.detach().reshape([1]).clone();
  torch.distributed.allReduce([value], "sum");
  return value.item();
}
