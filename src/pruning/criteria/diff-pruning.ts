// Diff-Pruning (the paper's criterion, ddpm_prune.py): sum |w * g| of each channel, with the
// denoising loss's gradients accumulated over the informative timesteps only (t = 0, 1, ... until
// the loss falls below thr times its maximum).
import type { Criterion } from "../criterion.js";
import { ddpmExpTaylor, meanReduced } from "../criterion.js";

export const diffPruning: Criterion = {
  name: "diff-pruning",
  description: "Taylor sum |w * g| of each channel, gradients over the informative timesteps (the paper's)",
  gradients: "informative",
  score: (group, context) =>
    context.variant === "ddpm-exp" ? ddpmExpTaylor(group, context) : meanReduced(group, context, (rows) => rows.weightTimesGrad().abs().sum(1)),
};
