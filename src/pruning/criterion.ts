// What a pruning criterion is (Torch-Pruning's Importance classes), and the group reductions the
// criteria share. Each criterion is one object in criteria/, listed once in criteria/index.ts.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import type { GroupMember, PruningGroup } from "./groups.js";
import type { Importance } from "./importance.js";

export interface Criterion {
  /** The name the CLI and reports use ("diff-pruning", "magnitude", ...). */
  readonly name: string;
  /** One line, shown in the CLI's --help. */
  readonly description: string;
  /**
   * The denoising-loss gradients it scores with: "informative" (Diff-Pruning: t = 0, 1, ... until
   * the loss falls below thr x max), "all" (every timestep: Taylor), or null (none).
   */
  readonly gradients: "informative" | "all" | null;
  /** One score per root channel of `group` (higher = more important), from the weights as they are now. */
  score(group: PruningGroup, context: Importance): Float64Array;
  /** Runs on the model after pruning (reinit re-initialises every weight). */
  afterPruning?(model: Module): void;
}

/** One conv/linear weight of a group with the group's channels as rows: [channels, everything else]. */
export interface ChannelRows {
  weight(): Tensor;
  /** w * g; an error saying what to do when the gradient was not accumulated. */
  weightTimesGrad(): Tensor;
}

/** w * g of a weight, or a clear error when its gradient was not accumulated. */
function weightTimesGrad(context: Importance, w: Tensor, name: string): Tensor {
  const g = w.grad;
  if (!g) throw new Error(`${context.criterion.name} importance needs gradients, but ${name} has none: accumulate them first (accumulateGradients)`);
  return w.mul(g);
}

/** Sums `scores` of each scored member per root channel; returns the sums and how many members added to them. */
function accumulate(
  group: PruningGroup,
  context: Importance,
  scored: (m: GroupMember) => boolean,
  scores: (w: Tensor, m: GroupMember) => Tensor,
): { total: Float64Array; contributors: number } {
  const params = new Map(context.graph.module.namedParameters());
  const total = new Float64Array(group.channels);
  let contributors = 0;
  for (const m of group.members) {
    if (!scored(m)) continue;
    const w = params.get(m.slot.tensor)!;
    const s = torch.noGrad(() => torch.tidy(() => new Float64Array(scores(w, m).toArray())));
    m.positions.forEach((p, i) => (total[m.roots[i]!]! += s[p]!));
    contributors++;
  }
  return { total, contributors };
}

/**
 * Torch-Pruning 1.3's group reduction (MagnitudeImportance, TaylorImportance): each conv/linear
 * weight in the group scores the channels it holds (output rows of producers, input columns of
 * consumers) with `perChannel`; the scores are summed per root channel, divided by the number of
 * contributing weights ("mean" reduction), then by their mean. Biases and norm weights are not scored.
 */
export function meanReduced(group: PruningGroup, context: Importance, perChannel: (rows: ChannelRows) => Tensor): Float64Array {
  const n = group.channels;
  const { total, contributors } = accumulate(
    group,
    context,
    (m) => context.layerWeights.has(m.slot.tensor) && m.slot.dim <= 1,
    (w, m) => {
      const rows = (t: Tensor): Tensor => (m.slot.dim === 0 ? t : t.transpose(0, 1)).flatten(1);
      return perChannel({ weight: () => rows(w), weightTimesGrad: () => rows(weightTimesGrad(context, w, m.slot.tensor)) });
    },
  );
  if (contributors === 0) return total.fill(1);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += total[i]! / contributors / n;
  for (let i = 0; i < n; i++) total[i] = total[i]! / contributors / (mean === 0 ? 1 : mean);
  return total;
}

/**
 * The DDPM codebase's Taylor score (ddpm_exp/prune.py's own Torch-Pruning copy), which taylor and
 * diff-pruning share under the "ddpm-exp" importance variant: per channel, (w * g)^2 summed over
 * each conv/linear member's other dims, plus |w * g| of GroupNorm affine weights, summed over the
 * members that hold each root channel once (its "aligned" scores), with no mean and no normaliser.
 */
export function ddpmExpTaylor(group: PruningGroup, context: Importance): Float64Array {
  const { total, contributors } = accumulate(
    group,
    context,
    (m) => ((context.layerWeights.has(m.slot.tensor) && m.slot.dim <= 1) || context.normWeights.has(m.slot.tensor)) && m.positions.length === group.channels,
    (w, m) => {
      const wg = weightTimesGrad(context, w, m.slot.tensor);
      if (w.ndim === 1) return wg.abs();
      return (m.slot.dim === 0 ? wg : wg.transpose(0, 1)).flatten(1).pow(2).sum(1);
    },
  );
  return contributors === 0 ? total.fill(1) : total;
}
