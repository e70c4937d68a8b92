// Layers with a weight and an optional bias (Linear, Conv2d), initialised as PyTorch does:
// uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5), and the bias alike).
import type { Tensor } from "../torch/index.js";
import { defaultBound, uniform } from "./init.js";
import { Module } from "./module.js";

export abstract class WeightedLayer extends Module {
  /** Registers `weight` of `shape` and, when `bias`, a bias of shape[0], both drawn from fan-in. */
  protected initWeight(shape: number[], fanIn: number, bias: boolean): void {
    const bound = defaultBound(fanIn);
    this.registerParameter("weight", uniform(shape, bound));
    this.registerParameter("bias", bias ? uniform([shape[0]!], bound) : null);
  }

  get weight(): Tensor {
    return this.param("weight");
  }
  get bias(): Tensor | null {
    return this.optionalParam("bias");
  }
}
