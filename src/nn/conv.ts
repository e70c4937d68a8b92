// Conv2d. Channel counts are read from the weight, so a pruned (narrowed) weight is all it takes.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { WeightedLayer } from "./weighted.js";

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends WeightedLayer {
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  /** Set by pruning when a depthwise conv loses channels. */
  groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number, options: Conv2dOptions = {}) {
    super();
    const { stride = 1, padding = 0, groups = 1, bias = true } = options;
    this.kernelSize = kernelSize;
    this.stride = stride;
    this.padding = padding;
    this.groups = groups;
    this.initWeight([outChannels, inChannels / groups, kernelSize, kernelSize], (inChannels / groups) * kernelSize * kernelSize, bias);
  }
  get inChannels(): number {
    return this.weight.shape[1]! * this.groups;
  }
  get outChannels(): number {
    return this.weight.shape[0]!;
  }

  forward(x: Tensor): Tensor {
    return torch.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, groups: this.groups });
  }
}
