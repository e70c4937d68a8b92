// GroupNorm with per-channel affine parameters; the channel count follows the weight.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly eps: number;

  constructor(numGroups: number, numChannels: number, { eps = 1e-5, affine = true }: { eps?: number; affine?: boolean } = {}) {
    super();
    if (numChannels % numGroups !== 0)
      throw new Error(`GroupNorm: ${numChannels} channels cannot be split into ${numGroups} groups`);
    this.numGroups = numGroups;
    this.eps = eps;
    this.registerParameter("weight", affine ? torch.ones([numChannels]) : null);
    this.registerParameter("bias", affine ? torch.zeros([numChannels]) : null);
  }

  get numChannels(): number {
    return this.param("weight").shape[0]!;
  }

  forward(x: Tensor): Tensor {
    const [weight, bias] = [this.optionalParam("weight"), this.optionalParam("bias")];
    if (x.dtype !== "bfloat16") return torch.groupNorm(x, this.numGroups, weight, bias, this.eps);
    // libtorch 1.13's bfloat16 group norm is scalar code, ~10x slower than float32's: normalise in
    // float32 (as autocast does) and hand bfloat16 on
    return torch.tidy(() => torch.groupNorm(x.float(), this.numGroups, weight?.float() ?? null, bias?.float() ?? null, this.eps).to("bfloat16"));
  }
}
