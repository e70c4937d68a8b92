// ResnetBlock2D, Downsample2D and Upsample2D as diffusers defines them.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Conv2d, Dropout, GroupNorm, Linear, Module, SiLU } from "../nn/index.js";

export interface ResnetOptions {
  /** Width of the time embedding; null for a block without one (the autoencoders' resnets: no time_emb_proj). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  dropout: number;
  outputScaleFactor: number;
}

/**
 * norm1 -> SiLU -> conv1 -> + time_emb_proj(SiLU(temb)) -> norm2 -> SiLU -> dropout -> conv2 -> + shortcut,
 * then divided by output_scale_factor. Without a time embedding the "+ time_emb_proj" step is skipped.
 */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  readonly act = new SiLU();
  readonly outputScaleFactor: number;

  constructor(inChannels: number, outChannels: number, options: ResnetOptions) {
    super();
    const { tembChannels, groups, eps, dropout, outputScaleFactor } = options;
    this.outputScaleFactor = outputScaleFactor;
    this.norm1 = this.registerModule("norm1", new GroupNorm(groups, inChannels, { eps }));
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.timeEmbProj = tembChannels === null ? null : this.registerModule("time_emb_proj", new Linear(tembChannels, outChannels));
    this.norm2 = this.registerModule("norm2", new GroupNorm(groups, outChannels, { eps }));
    this.dropout = this.registerModule("dropout", new Dropout(dropout));
    this.conv2 = this.registerModule("conv2", new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    this.convShortcut = inChannels !== outChannels ? this.registerModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1)) : null;
  }

  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    // a scope per block: its intermediates are freed when it returns, so the next block reuses
    // memory that is still in cache (one scope for the whole forward kept them all alive)
    return torch.tidy(() => this.#forward(x, temb));
  }

  #forward(x: Tensor, temb: Tensor | null): Tensor {
    const act = (t: Tensor) => this.act.forward(t);
    let h = torch.sequential(x, (t) => this.norm1.forward(t), act, (t) => this.conv1.forward(t));
    if (this.timeEmbProj) {
      if (!temb) throw new Error("ResnetBlock2D: this block has a time_emb_proj, so it needs a time embedding");
      const t = this.timeEmbProj.forward(this.act.forward(temb));
      h = torch.sequential(h, (v) => v.add(t.unsqueeze(-1).unsqueeze(-1)));
    } else if (temb) {
      throw new Error("ResnetBlock2D: this block was built without a time embedding (temb_channels null) but was given one");
    }
    h = torch.sequential(h, (t) => this.norm2.forward(t), act, (t) => this.dropout.forward(t), (t) => this.conv2.forward(t));
    const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
    const out = shortcut.add(h);
    return this.outputScaleFactor === 1 ? out : out.div(this.outputScaleFactor);
  }
}

/** A stride-2 3x3 conv; with padding 0 the input is first padded by one on the right and bottom. */
export class Downsample2D extends Module {
  readonly conv: Conv2d;
  readonly padding: number;

  constructor(channels: number, padding: number) {
    super();
    this.padding = padding;
    this.conv = this.registerModule("conv", new Conv2d(channels, channels, 3, { stride: 2, padding }));
  }

  forward(x: Tensor): Tensor {
    return this.conv.forward(this.padding === 0 ? torch.pad(x, [0, 1, 0, 1]) : x);
  }
}

/** Nearest-neighbour x2, then a 3x3 conv. */
export class Upsample2D extends Module {
  readonly conv: Conv2d;

  constructor(channels: number) {
    super();
    this.conv = this.registerModule("conv", new Conv2d(channels, channels, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    return this.conv.forward(torch.interpolate(x, { scaleFactor: 2 }));
  }
}
