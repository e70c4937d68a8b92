// BatchNorm2d as torch.nn.BatchNorm2d (affine, running statistics), under PyTorch's parameter
// names so torchvision-style checkpoints load (the FID feature extractors use it).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class BatchNorm2d extends Module {
  readonly eps: number;
  readonly momentum: number;

  constructor(numFeatures: number, { eps = 1e-5, momentum = 0.1 }: { eps?: number; momentum?: number } = {}) {
    super();
    this.eps = eps;
    this.momentum = momentum;
    this.registerParameter("weight", torch.ones([numFeatures]));
    this.registerParameter("bias", torch.zeros([numFeatures]));
    this.registerBuffer("running_mean", torch.zeros([numFeatures]));
    this.registerBuffer("running_var", torch.ones([numFeatures]));
  }

  /** Training: batch statistics, and the running ones updated in place; eval: running ones. */
  forward(x: Tensor): Tensor {
    return torch.batchNorm(x, this.buffer("running_mean"), this.buffer("running_var"), {
      weight: this.param("weight"),
      bias: this.param("bias"),
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}
