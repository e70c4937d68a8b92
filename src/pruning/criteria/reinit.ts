// Reinit: the paper's baseline that keeps a randomly pruned architecture but not its weights.
// Channels are chosen as random chooses them; then every layer gets torch.nn's default
// initialisation at its pruned shape.
import * as torch from "../../torch/index.js";
import { BatchNorm2d, Conv2d, GroupNorm, Linear, type Module } from "../../nn/index.js";
import { defaultBound, uniform } from "../../nn/init.js";
import type { Criterion } from "../criterion.js";
import { random } from "./random.js";

/** Re-initialises every Conv2d, Linear, GroupNorm and BatchNorm2d of `model` in place. */
function reinitialize(model: Module): void {
  torch.noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof Conv2d || m instanceof Linear) {
        const w = m.param("weight");
        const bound = defaultBound(w.numel / w.shape[0]!);
        m.registerParameter("weight", uniform([...w.shape], bound));
        if (m.optionalParam("bias")) m.registerParameter("bias", uniform([w.shape[0]!], bound));
      } else if ((m instanceof GroupNorm || m instanceof BatchNorm2d) && m.optionalParam("weight")) {
        const n = m.param("weight").shape[0]!;
        m.registerParameter("weight", torch.ones([n]));
        m.registerParameter("bias", torch.zeros([n]));
        if (m instanceof BatchNorm2d) {
          m.registerBuffer("running_mean", torch.zeros([n]));
          m.registerBuffer("running_var", torch.ones([n]));
        }
      }
    }
  });
}

export const reinit: Criterion = {
  name: "reinit",
  description: "random channels, then every weight re-initialised (train from scratch)",
  gradients: null,
  score: random.score,
  afterPruning: reinitialize,
};
