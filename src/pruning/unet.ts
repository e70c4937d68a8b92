// Diff-Pruning of a UNet2DModel, as the reference script runs it: count, accumulate gradients
// (for the Taylor criteria), prune, re-initialise (reinit), count again.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import type { BaseScheduler } from "../diffusion/index.js";
import { accumulateGradients, type GradientReport } from "./gradients.js";
import type { Calibration } from "./calibration.js";
import { countOpsAndParams } from "./count.js";
import { checkCriterion, needsGradients, type Criterion, type ImportanceVariant } from "./importance.js";
import { prune, type LayerChannels, type PruneOptions, type PruneResult } from "./pruner.js";
import { reinitialize } from "./reinit.js";

export interface UNetPruneOptions extends Omit<PruneOptions, "forward" | "prepare" | "criterion"> {
  criterion: Criterion | string;
  /** The training schedule; the gradient loop runs over its timesteps. */
  scheduler: BaseScheduler;
  /** Images and noise for the gradient criteria. */
  calibration?: Calibration | null;
  /** Diff-Pruning's threshold on loss_t / max loss (default 0.05). */
  thr?: number;
  onGradientStep?: (t: number, loss: number, total: number) => void;
}

export interface UNetPruneReport {
  method: Criterion;
  importance: ImportanceVariant;
  ratio: number;
  global: boolean;
  before: { params: number; macs: number };
  after: { params: number; macs: number };
  layers: LayerChannels[];
  kept: { root: string; channels: number; reason: string }[];
  /** The groups in the order they were pruned, with the root channels each removed. */
  history: PruneResult["history"];
  /** The gradient loop: per-t losses and T' (taylor and diff-pruning). */
  gradients: GradientReport | null;
}

/** One forward at batch 1 (sample of zeros, timestep 1): what tracing and counting run. */
export const unetForward = (model: UNet2DModel) => (): Tensor => {
  const c = model.config;
  return model.forward(torch.zeros([1, c.in_channels, c.sample_size, c.sample_size]), 1);
};

/** Prunes `model` in place with one of the paper's criteria and reports what changed. */
export function pruneUNet(model: UNet2DModel, options: UNetPruneOptions): UNetPruneReport {
  const criterion = checkCriterion(options.criterion);
  const { scheduler, calibration, thr = 0.05, onGradientStep, ...rest } = options;
  if (needsGradients(criterion) && !calibration) throw new Error(`${criterion} pruning needs a calibration batch (a dataset or a calibration file)`);
  const forward = unetForward(model);
  const before = countOpsAndParams(model, forward);
  let gradients: GradientReport | null = null;
  const result = prune(model, {
    ...rest,
    criterion,
    forward,
    prepare: needsGradients(criterion)
      ? () => {
          gradients = accumulateGradients(model, {
            ...calibration!,
            scheduler,
            thr: criterion === "diff-pruning" ? thr : null,
            stopBeforeBackward: rest.importance === "ddpm-exp",
            ...(onGradientStep ? { onStep: onGradientStep } : {}),
          });
        }
      : undefined,
  });
  for (const p of model.parameters()) p.grad = null;
  if (criterion === "reinit") reinitialize(model);
  const after = countOpsAndParams(model, forward);
  return {
    method: criterion,
    importance: options.importance ?? "diffusers",
    ratio: options.ratio,
    global: options.global ?? false,
    before: { params: before.params, macs: before.macs },
    after: { params: after.params, macs: after.macs },
    layers: result.layers,
    kept: result.kept,
    history: result.history,
    gradients,
  };
}
