// Diff-Pruning of a UNet2DModel, as the reference script runs it: count, accumulate gradients
// (for the gradient criteria), prune, the criterion's after-pruning step (reinit's re-initialisation),
// count again.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import type { BaseScheduler } from "../diffusion/index.js";
import { accumulateGradients, type GradientReport } from "./gradients.js";
import type { Calibration } from "./calibration.js";
import { countOpsAndParams } from "./count.js";
import type { Criterion } from "./criterion.js";
import { asCriterion } from "./criteria/index.js";
import type { ImportanceVariant } from "./importance.js";
import { prune, type LayerChannels, type PruneOptions, type PruneResult } from "./pruner.js";

export interface UNetPruneOptions extends Omit<PruneOptions, "forward" | "prepare" | "criterion"> {
  /** A criterion of CRITERIA by name, or any Criterion object. */
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
  /** The criterion's name. */
  method: string;
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

/**
 * One forward at batch 1 (sample of zeros, timestep 1, class 0 for a class-conditional model):
 * what tracing and counting run.
 */
export const unetForward = (model: UNet2DModel) => (): Tensor => {
  const c = model.config;
  return model.forward(torch.zeros([1, c.in_channels, c.sample_size, c.sample_size]), 1, model.exampleClassLabels(1));
};

/** Prunes `model` in place with one of the paper's criteria and reports what changed. */
export function pruneUNet(model: UNet2DModel, options: UNetPruneOptions): UNetPruneReport {
  const criterion = asCriterion(options.criterion);
  const { scheduler, calibration, thr = 0.05, onGradientStep, ...rest } = options;
  if (criterion.gradients !== null && !calibration) throw new Error(`${criterion.name} pruning needs a calibration batch (a dataset or a calibration file)`);
  const forward = unetForward(model);
  // An "identity" class embedding takes the caller's vectors as they are: their width (the time
  // embedding's) must stay.
  if (model.config.class_embed_type === "identity") rest.ignoredLayers = [...(rest.ignoredLayers ?? []), "time_embedding.linear_2"];
  const before = countOpsAndParams(model, forward);
  let gradients: GradientReport | null = null;
  const result = prune(model, {
    ...rest,
    criterion,
    forward,
    prepare: criterion.gradients !== null
      ? () => {
          gradients = accumulateGradients(model, {
            ...calibration!,
            scheduler,
            thr: criterion.gradients === "informative" ? thr : null,
            stopBeforeBackward: rest.importance === "ddpm-exp",
            ...(onGradientStep ? { onStep: onGradientStep } : {}),
          });
        }
      : undefined,
  });
  for (const p of model.parameters()) p.grad = null;
  criterion.afterPruning?.(model);
  const after = countOpsAndParams(model, forward);
  return {
    method: criterion.name,
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
