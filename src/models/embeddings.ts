// Sinusoidal timestep features and the MLP that embeds them (diffusers' Timesteps and
// TimestepEmbedding).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Linear, Module, SiLU } from "../nn/index.js";

/**
 * get_timestep_embedding: exp(-ln(10000) * i / (half - freqShift)) frequencies for i < half,
 * [sin, cos] of t times them (or [cos, sin] with flipSinToCos), zero-padded to an odd dim.
 */
export class Timesteps extends Module {
  constructor(
    readonly numChannels: number,
    readonly flipSinToCos: boolean,
    readonly freqShift: number,
  ) {
    super();
  }

  forward(timesteps: Tensor): Tensor {
    const half = Math.floor(this.numChannels / 2);
    const exponent = torch.arange(0, half, 1, { dtype: "float32", device: timesteps.device }).mul(-Math.log(10000) / (half - this.freqShift));
    const args = timesteps.float().unsqueeze(1).mul(exponent.exp().unsqueeze(0));
    const [first, second] = this.flipSinToCos ? [args.cos(), args.sin()] : [args.sin(), args.cos()];
    const emb = torch.cat([first, second], -1);
    return this.numChannels % 2 === 1 ? torch.pad(emb, [0, 1, 0, 0]) : emb;
  }
}

export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly act = new SiLU();
  readonly linear2: Linear;

  constructor(inChannels: number, timeEmbedDim: number) {
    super();
    this.linear1 = this.registerModule("linear_1", new Linear(inChannels, timeEmbedDim));
    this.linear2 = this.registerModule("linear_2", new Linear(timeEmbedDim, timeEmbedDim));
  }

  forward(x: Tensor): Tensor {
    return this.linear2.forward(this.act.forward(this.linear1.forward(x)));
  }
}
