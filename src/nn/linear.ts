// Linear: y = x W^T + b, with W [out, in].
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { WeightedLayer } from "./weighted.js";

export class Linear extends WeightedLayer {
  constructor(inFeatures: number, outFeatures: number, { bias = true }: { bias?: boolean } = {}) {
    super();
    this.initWeight([outFeatures, inFeatures], inFeatures, bias);
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
