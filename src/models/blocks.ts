// The UNet's stages: DownBlock2D / AttnDownBlock2D, UNetMidBlock2D, UpBlock2D / AttnUpBlock2D.
// An Attn* block is its plain twin with an attention layer after every resnet. The autoencoders'
// stages, DownEncoderBlock2D and UpDecoderBlock2D, are resnets without a time embedding and no skips.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Attention, Module, ModuleList } from "../nn/index.js";
import { Downsample2D, ResnetBlock2D, Upsample2D, type ResnetOptions } from "./resnet.js";

export interface BlockOptions extends ResnetOptions {
  numLayers: number;
  /** attention_head_dim: channels per head, or null for one head over all channels. */
  attentionHeadDim: number | null;
}

function attention(channels: number, o: BlockOptions): Attention {
  const heads = o.attentionHeadDim === null ? 1 : Math.floor(channels / o.attentionHeadDim);
  return new Attention(channels, {
    heads,
    dimHead: o.attentionHeadDim ?? channels,
    normNumGroups: o.groups,
    eps: o.eps,
    rescaleOutputFactor: o.outputScaleFactor,
  });
}

export class DownBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Attention> | null;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(inChannels: number, outChannels: number, o: BlockOptions & { addDownsample: boolean; downsamplePadding: number }, withAttention = false) {
    super();
    this.resnets = this.registerModule("resnets", new ModuleList<ResnetBlock2D>());
    this.attentions = withAttention ? this.registerModule("attentions", new ModuleList<Attention>()) : null;
    for (let i = 0; i < o.numLayers; i++) {
      this.resnets.append(new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, o));
      this.attentions?.append(attention(outChannels, o));
    }
    this.downsamplers = o.addDownsample ? this.registerModule("downsamplers", new ModuleList([new Downsample2D(outChannels, o.downsamplePadding)])) : null;
  }

  /** Returns the output and every intermediate state the up path concatenates back in. */
  forward(x: Tensor, temb: Tensor): [Tensor, Tensor[]] {
    const states: Tensor[] = [];
    this.resnets.items.forEach((resnet, i) => {
      x = resnet.forward(x, temb);
      if (this.attentions) x = this.attentions.at(i).forward(x);
      states.push(x);
    });
    if (this.downsamplers) {
      x = this.downsamplers.at(0).forward(x);
      states.push(x);
    }
    return [x, states];
  }
}

export class AttnDownBlock2D extends DownBlock2D {
  constructor(inChannels: number, outChannels: number, o: BlockOptions & { addDownsample: boolean; downsamplePadding: number }) {
    super(inChannels, outChannels, o, true);
  }
}

export class UNetMidBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Attention> | null;

  constructor(channels: number, o: BlockOptions & { addAttention: boolean }) {
    super();
    this.resnets = this.registerModule("resnets", new ModuleList([new ResnetBlock2D(channels, channels, o)]));
    this.attentions = o.addAttention ? this.registerModule("attentions", new ModuleList<Attention>()) : null;
    for (let i = 0; i < o.numLayers; i++) {
      this.attentions?.append(attention(channels, o));
      this.resnets.append(new ResnetBlock2D(channels, channels, o));
    }
  }

  /** `temb` is null in the autoencoders (resnets built with tembChannels null). */
  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    x = this.resnets.at(0).forward(x, temb);
    for (let i = 1; i < this.resnets.length; i++) {
      if (this.attentions) x = this.attentions.at(i - 1).forward(x);
      x = this.resnets.at(i).forward(x, temb);
    }
    return x;
  }
}

export class UpBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Attention> | null;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  /** The first resnet takes prevOutputChannels plus a skip; the last skip has inChannels. */
  constructor(inChannels: number, prevOutputChannels: number, outChannels: number, o: BlockOptions & { addUpsample: boolean }, withAttention = false) {
    super();
    this.resnets = this.registerModule("resnets", new ModuleList<ResnetBlock2D>());
    this.attentions = withAttention ? this.registerModule("attentions", new ModuleList<Attention>()) : null;
    for (let i = 0; i < o.numLayers; i++) {
      const skip = i === o.numLayers - 1 ? inChannels : outChannels;
      const input = i === 0 ? prevOutputChannels : outChannels;
      this.resnets.append(new ResnetBlock2D(input + skip, outChannels, o));
      this.attentions?.append(attention(outChannels, o));
    }
    this.upsamplers = o.addUpsample ? this.registerModule("upsamplers", new ModuleList([new Upsample2D(outChannels)])) : null;
  }

  /** Consumes skips from the end of `skips` (the down path's states, in order). */
  forward(x: Tensor, skips: Tensor[], temb: Tensor): Tensor {
    this.resnets.items.forEach((resnet, i) => {
      const skip = skips.pop();
      if (!skip) throw new Error("UpBlock2D: ran out of skip connections (the down and up paths do not match)");
      x = resnet.forward(torch.cat([x, skip], 1), temb);
      if (this.attentions) x = this.attentions.at(i).forward(x);
    });
    return this.upsamplers ? this.upsamplers.at(0).forward(x) : x;
  }
}

export class AttnUpBlock2D extends UpBlock2D {
  constructor(inChannels: number, prevOutputChannels: number, outChannels: number, o: BlockOptions & { addUpsample: boolean }) {
    super(inChannels, prevOutputChannels, outChannels, o, true);
  }
}

/** The encoder's stage: resnets (no time embedding), then a downsampler unless it is the last stage. */
export class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(inChannels: number, outChannels: number, o: ResnetOptions & { numLayers: number; addDownsample: boolean; downsamplePadding: number }) {
    super();
    this.resnets = this.registerModule("resnets", new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < o.numLayers; i++) this.resnets.append(new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, o));
    this.downsamplers = o.addDownsample ? this.registerModule("downsamplers", new ModuleList([new Downsample2D(outChannels, o.downsamplePadding)])) : null;
  }

  forward(x: Tensor): Tensor {
    for (const resnet of this.resnets) x = resnet.forward(x);
    return this.downsamplers ? this.downsamplers.at(0).forward(x) : x;
  }
}

/** The decoder's stage: resnets (no time embedding, no skips), then an upsampler unless it is the last stage. */
export class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(inChannels: number, outChannels: number, o: ResnetOptions & { numLayers: number; addUpsample: boolean }) {
    super();
    this.resnets = this.registerModule("resnets", new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < o.numLayers; i++) this.resnets.append(new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, o));
    this.upsamplers = o.addUpsample ? this.registerModule("upsamplers", new ModuleList([new Upsample2D(outChannels)])) : null;
  }

  forward(x: Tensor): Tensor {
    for (const resnet of this.resnets) x = resnet.forward(x);
    return this.upsamplers ? this.upsamplers.at(0).forward(x) : x;
  }
}
