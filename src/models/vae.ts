// The autoencoders' parts as diffusers' vae.py defines them: Encoder, Decoder, VectorQuantizer and
// DiagonalGaussianDistribution. Encoder and Decoder are UNet stages without a time embedding and
// without skips; every norm uses eps 1e-6, and the mid block's attention is single-head.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Conv2d, Embedding, GroupNorm, Module, ModuleList, SiLU } from "../nn/index.js";
import { uniform } from "../nn/init.js";
import { DownEncoderBlock2D, UNetMidBlock2D, UpDecoderBlock2D } from "./blocks.js";
import type { ResnetOptions } from "./resnet.js";
import { loadPretrainedWeights, readConfig, resolveComponentFolder } from "./checkpoint.js";

/** The Encoder and Decoder's eps for every GroupNorm (resnets, attention, conv_norm_out). */
const EPS = 1e-6;

export interface CoderOptions {
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
}

const resnetOptions = (groups: number): ResnetOptions => ({ tembChannels: null, groups, eps: EPS, dropout: 0, outputScaleFactor: 1 });

function midBlock(channels: number, groups: number): UNetMidBlock2D {
  return new UNetMidBlock2D(channels, { ...resnetOptions(groups), numLayers: 1, attentionHeadDim: null, addAttention: true });
}

/** conv_in -> DownEncoderBlock2D x n -> mid block -> GroupNorm -> SiLU -> conv_out (2x channels when doubleZ). */
export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convAct = new SiLU();
  readonly convOut: Conv2d;

  constructor(inChannels: number, outChannels: number, o: CoderOptions & { doubleZ: boolean }) {
    super();
    const ch = o.blockOutChannels;
    const last = ch[ch.length - 1]!;
    this.convIn = this.registerModule("conv_in", new Conv2d(inChannels, ch[0]!, 3, { padding: 1 }));
    this.downBlocks = this.registerModule("down_blocks", new ModuleList<DownEncoderBlock2D>());
    ch.forEach((out, i) => {
      const opts = { ...resnetOptions(o.normNumGroups), numLayers: o.layersPerBlock, addDownsample: i < ch.length - 1, downsamplePadding: 0 };
      this.downBlocks.append(new DownEncoderBlock2D(ch[Math.max(0, i - 1)]!, out, opts));
    });
    this.midBlock = this.registerModule("mid_block", midBlock(last, o.normNumGroups));
    this.convNormOut = this.registerModule("conv_norm_out", new GroupNorm(o.normNumGroups, last, { eps: EPS }));
    this.convOut = this.registerModule("conv_out", new Conv2d(last, o.doubleZ ? 2 * outChannels : outChannels, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      let h = this.convIn.forward(x);
      for (const block of this.downBlocks) h = block.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(this.convAct.forward(this.convNormOut.forward(h)));
    });
  }
}

/** conv_in -> mid block -> UpDecoderBlock2D x n (layers_per_block + 1 resnets each) -> GroupNorm -> SiLU -> conv_out. */
export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convAct = new SiLU();
  readonly convOut: Conv2d;

  constructor(inChannels: number, outChannels: number, o: CoderOptions) {
    super();
    const reversed = [...o.blockOutChannels].reverse();
    const first = o.blockOutChannels[0]!;
    this.convIn = this.registerModule("conv_in", new Conv2d(inChannels, reversed[0]!, 3, { padding: 1 }));
    this.midBlock = this.registerModule("mid_block", midBlock(reversed[0]!, o.normNumGroups));
    this.upBlocks = this.registerModule("up_blocks", new ModuleList<UpDecoderBlock2D>());
    reversed.forEach((out, i) => {
      const opts = { ...resnetOptions(o.normNumGroups), numLayers: o.layersPerBlock + 1, addUpsample: i < reversed.length - 1 };
      this.upBlocks.append(new UpDecoderBlock2D(reversed[Math.max(0, i - 1)]!, out, opts));
    });
    this.convNormOut = this.registerModule("conv_norm_out", new GroupNorm(o.normNumGroups, first, { eps: EPS }));
    this.convOut = this.registerModule("conv_out", new Conv2d(first, outChannels, 3, { padding: 1 }));
  }

  forward(z: Tensor): Tensor {
    return torch.tidy(() => {
      let h = this.convIn.forward(z);
      h = this.midBlock.forward(h);
      for (const block of this.upBlocks) h = block.forward(h);
      return this.convOut.forward(this.convAct.forward(this.convNormOut.forward(h)));
    });
  }
}

export interface Quantized {
  /** The nearest codebook vectors, [B, D, H, W]; gradients pass straight through to the input. */
  quantized: Tensor;
  /** The codebook and commitment loss (a scalar). */
  loss: Tensor;
  /** The chosen code of every position, int64 [B*H*W] (row-major over B, H, W). */
  indices: Tensor;
}

/**
 * Replaces every latent vector by its nearest codebook vector (L2). The codebook is
 * `embedding.weight` [num codes, D]. `legacy` (diffusers' default) weighs the loss as
 * |sg(z_q) - z|^2 + beta |z_q - sg(z)|^2; otherwise beta goes to the first term.
 */
export class VectorQuantizer extends Module {
  readonly embedding: Embedding;
  readonly beta: number;
  readonly legacy: boolean;

  constructor(numEmbeddings: number, embedDim: number, { beta = 0.25, legacy = true }: { beta?: number; legacy?: boolean } = {}) {
    super();
    this.beta = beta;
    this.legacy = legacy;
    this.embedding = this.registerModule("embedding", new Embedding(numEmbeddings, embedDim));
    this.embedding.registerParameter("weight", uniform([numEmbeddings, embedDim], 1 / numEmbeddings));
  }

  forward(z: Tensor): Quantized {
    return torch.tidy(() => {
      const codebook = this.embedding.weight;
      const dim = codebook.shape[1]!;
      if (z.ndim !== 4 || z.shape[1] !== dim)
        throw new Error(`VectorQuantizer: expected latents [B, ${dim}, H, W], got [${z.shape.join(", ")}]`);
      const zHwc = z.permute(0, 2, 3, 1).contiguous();
      const flat = zHwc.reshape(-1, dim);
      // |z - e|^2 = |z|^2 + |e|^2 - 2 z.e, the way torch.cdist computes it for many vectors
      const distances = flat.square().sum(1, true).add(codebook.square().sum(1).unsqueeze(0)).sub(flat.matmul(codebook.transpose(0, 1)).mul(2));
      const indices = distances.argmin(1);
      const zq = this.embedding.forward(indices).reshape(...zHwc.shape);
      const toCodes = zq.detach().sub(zHwc).square().mean();
      const toLatents = zq.sub(zHwc.detach()).square().mean();
      const loss = this.legacy ? toCodes.add(toLatents.mul(this.beta)) : toCodes.mul(this.beta).add(toLatents);
      const straightThrough = zHwc.add(zq.sub(zHwc).detach());
      return { quantized: straightThrough.permute(0, 3, 1, 2).contiguous(), loss, indices };
    });
  }
}

/**
 * The posterior of AutoencoderKL: quant_conv's output split along channels into mean and log
 * variance (clamped to [-30, 20]). A plain object, so tidy() keeps its tensors when it is returned.
 */
export interface DiagonalGaussianDistribution {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;
  readonly var: Tensor;
  /** mean + std * noise; `noise` defaults to a standard-normal draw from torch's generator. */
  sample(noise?: Tensor): Tensor;
  /** The mean. */
  mode(): Tensor;
  /** KL divergence to N(0, I) per sample: 0.5 * sum(mean^2 + var - 1 - logvar) over C, H, W. */
  kl(): Tensor;
  /** Negative log-likelihood of `x` per sample: 0.5 * sum(log 2pi + logvar + (x - mean)^2 / var) over C, H, W. */
  nll(x: Tensor): Tensor;
}

export function diagonalGaussian(parameters: Tensor): DiagonalGaussianDistribution {
  if (parameters.ndim !== 4 || parameters.shape[1]! % 2 !== 0)
    throw new Error(`DiagonalGaussianDistribution: expected [B, 2*C, H, W] moments, got [${parameters.shape.join(", ")}]`);
  const { mean, logvar, std, variance } = torch.tidy(() => {
    const [mean, raw] = parameters.chunk(2, 1) as [Tensor, Tensor];
    const logvar = raw.clamp(-30, 20);
    return { mean, logvar, std: logvar.mul(0.5).exp(), variance: logvar.exp() };
  });
  return {
    mean,
    logvar,
    std,
    var: variance,
    sample: (noise?: Tensor) => torch.tidy(() => mean.add(std.mul(noise ?? torch.randnLike(mean)))),
    mode: () => mean,
    kl: () => torch.tidy(() => mean.square().add(variance).sub(1).sub(logvar).sum([1, 2, 3]).mul(0.5)),
    nll: (x: Tensor) => torch.tidy(() => logvar.add(Math.log(2 * Math.PI)).add(x.sub(mean).square().div(variance)).sum([1, 2, 3]).mul(0.5)),
  };
}

/** [B, channels, H, W], or an error saying what the autoencoder expected. */
export function checkInput(what: string, x: Tensor, channels: number, kind: string): void {
  if (x.ndim !== 4 || x.shape[1] !== channels)
    throw new Error(`${what}: expected ${kind} of shape [B, ${channels}, H, W], got [${x.shape.join(", ")}]`);
}

/**
 * Loads an autoencoder from its folder, or from the first of `folders` in a pipeline folder: the
 * config resolved, the model built, its weights loaded by shape and checked by one forward.
 */
export function loadAutoencoder<C extends { in_channels: number; block_out_channels: number[] }, M extends Module & { forward(x: Tensor): Tensor }>(
  dir: string,
  folders: readonly string[],
  resolve: (raw: Record<string, unknown>, source: string) => C,
  build: (config: C) => M,
): M {
  const modelDir = resolveComponentFolder(dir, folders);
  const config = resolve(readConfig(modelDir), `${modelDir}/config.json`);
  const model = torch.noGrad(() => build(config));
  const size = 2 ** (config.block_out_channels.length - 1);
  return loadPretrainedWeights(model, modelDir, () => model.forward(torch.zeros([1, config.in_channels, size, size])));
}
