// Linear: y = x W^T + b, with W [out, in].
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { defaultBound, uniform } from "./init.js";
import { Module } from "./module.js";

export class Linear extends Module {
  constructor(inFeatures: number, outFeatures: number, { bias = true }: { bias?: boolean } = {}) {
    super();
    const bound = defaultBound(inFeatures);
    this.registerParameter("weight", uniform([outFeatures, inFeatures], bound));
    this.registerParameter("bias", bias ? uniform([outFeatures], bound) : null);
  }

  get weight(): Tensor {
    return this.param("weight");
  }
  get bias(): Tensor | null {
    return this.optionalParam("bias");
  }
  get inFeatures(): number {
    return this.weight.shape[1]!;
  }
  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  forward(x: Tensor): Tensor {
    return torch.linear(x, this.weight, this.bias);
  }
}
