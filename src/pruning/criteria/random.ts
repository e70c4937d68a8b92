// Random: one uniform [0, 1) score per channel from torch's generator (torch.manualSeed reproduces it).
import * as torch from "../../torch/index.js";
import type { Criterion } from "../criterion.js";

export const random: Criterion = {
  name: "random",
  description: "uniform random scores (torch.manualSeed reproduces them)",
  gradients: null,
  score: (group) => new Float64Array(torch.tidy(() => torch.rand([group.channels], { dtype: "float64" }).toArray())),
};
