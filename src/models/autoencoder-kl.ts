// AutoencoderKL as diffusers 0.17 defines it (the VAE of Stable Diffusion): Encoder (mean and log
// variance) -> quant_conv gives a diagonal Gaussian posterior over the latents; post_quant_conv ->
// Decoder gives the image.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Conv2d, Module } from "../nn/index.js";
import { resolveAutoencoderKLConfig, type AutoencoderKLConfig } from "./autoencoder-config.js";
import { writeModelFolder } from "./checkpoint.js";
import { checkInput, loadAutoencoder, Decoder, diagonalGaussian, Encoder, type DiagonalGaussianDistribution }  from "./vae.js";

/** Where a pipeline folder keeps an AutoencoderKL. */
export const AUTOENCODER_KL_FOLDERS = ["vae", "vqvae"];

export class AutoencoderKL extends Module {
  readonly config: AutoencoderKLConfig;
  readonly encoder: Encoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;
  readonly decoder: Decoder;

  /** A model with freshly initialised weights (seed with torch.manualSeed first). */
  constructor(config: Partial<AutoencoderKLConfig> | AutoencoderKLConfig) {
    super();
    const c = resolveAutoencoderKLConfig(config as Record<string, unknown>);
    this.config = c;
    const coder = { blockOutChannels: c.block_out_channels, layersPerBlock: c.layers_per_block, normNumGroups: c.norm_num_groups };
    const z = c.latent_channels;
    this.encoder = this.registerModule("encoder", new Encoder(c.in_channels, z, { ...coder, doubleZ: true }));
    this.quantConv = this.registerModule("quant_conv", new Conv2d(2 * z, 2 * z, 1));
    this.postQuantConv = this.registerModule("post_quant_conv", new Conv2d(z, z, 1));
    this.decoder = this.registerModule("decoder", new Decoder(z, c.out_channels, coder));
  }

  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  get latentChannels(): number {
    return this.postQuantConv.weight.shape[1]!;
  }

  /** The posterior over the latents of images `x` [B, in_channels, H, W] (diffusers' encode(x).latent_dist). */
  encode(x: Tensor): DiagonalGaussianDistribution {
    checkInput("encode", x, this.config.in_channels, "images");
    return torch.tidy(() => diagonalGaussian(this.quantConv.forward(this.encoder.forward(x))));
  }

  /** Images from latents `z` [B, latent_channels, h, w]. */
  decode(z: Tensor): Tensor {
    checkInput("decode", z, this.latentChannels, "latents");
    return torch.tidy(() => this.decoder.forward(this.postQuantConv.forward(z)));
  }

  /**
   * decode(z) with z the posterior's mode, or a sample of it (`samplePosterior`, drawing `noise`
   * or from torch's generator).
   */
  forward(sample: Tensor, { samplePosterior = false, noise }: { samplePosterior?: boolean; noise?: Tensor } = {}): Tensor {
    return torch.tidy(() => {
      const posterior = this.encode(sample);
      return this.decode(samplePosterior ? posterior.sample(noise) : posterior.mode());
    });
  }

  /** Loads an AutoencoderKL folder, or the vae/ (or vqvae/) of a pipeline folder. */
  static fromPretrained(dir: string): AutoencoderKL {
    return loadAutoencoder(dir, AUTOENCODER_KL_FOLDERS, resolveAutoencoderKLConfig, (config) => new AutoencoderKL(config));
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (atomically) into `dir`. */
  savePretrained(dir: string): void {
    writeModelFolder(dir, this.config, this.stateDict());
  }
}
