// Parameter-free layers.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}

/** Zeroes elements with probability p while training, scaling the rest by 1 / (1 - p). */
export class Dropout extends Module {
  constructor(public p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? torch.dropout(x, this.p, true) : x;
  }
}

/** The activation a diffusers config names (act_fn). */
export function activation(name: string): SiLU {
  if (name === "silu" || name === "swish") return new SiLU();
  throw new Error(`act_fn "${name}" is not supported (only silu)`);
}
