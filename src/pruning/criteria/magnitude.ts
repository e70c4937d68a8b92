// Magnitude (Torch-Pruning's MagnitudeImportance, p = 2): the sum of w^2 of each channel.
import type { Criterion } from "../criterion.js";
import { meanReduced } from "../criterion.js";

export const magnitude: Criterion = {
  name: "magnitude",
  description: "sum of squared weights of each channel (no gradients)",
  gradients: null,
  score: (group, context) => meanReduced(group, context, (rows) => rows.weight().pow(2).sum(1)),
};
