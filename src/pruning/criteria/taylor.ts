// Taylor (Torch-Pruning's TaylorImportance, multivariable): |sum(w * g)| of each channel, with the
// denoising loss's gradients accumulated over every timestep.
import type { Criterion } from "../criterion.js";
import { ddpmExpTaylor, meanReduced } from "../criterion.js";

export const taylor: Criterion = {
  name: "taylor",
  description: "first-order Taylor |sum(w * g)| of each channel, gradients over every timestep",
  gradients: "all",
  score: (group, context) =>
    context.variant === "ddpm-exp" ? ddpmExpTaylor(group, context) : meanReduced(group, context, (rows) => rows.weightTimesGrad().sum(1).abs()),
};
