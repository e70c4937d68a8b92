// VQModel as diffusers 0.17 defines it (the autoencoder of LDMPipeline): Encoder -> quant_conv
// gives the latents; decoding snaps them to the nearest codebook vectors, then post_quant_conv ->
// Decoder gives the image.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Conv2d, Module } from "../nn/index.js";
import { resolveVQModelConfig, type VQModelConfig } from "./autoencoder-config.js";
import { writeModelFolder } from "./checkpoint.js";
import { checkInput, loadAutoencoder, Decoder, Encoder, VectorQuantizer, type Quantized }  from "./vae.js";

/** Where a pipeline folder keeps a VQModel. */
export const VQ_MODEL_FOLDERS = ["vqvae", "vae"];

export class VQModel extends Module {
  readonly config: VQModelConfig;
  readonly encoder: Encoder;
  readonly quantConv: Conv2d;
  readonly quantize: VectorQuantizer;
  readonly postQuantConv: Conv2d;
  readonly decoder: Decoder;

  /** A model with freshly initialised weights (seed with torch.manualSeed first). */
  constructor(config: Partial<VQModelConfig> | VQModelConfig) {
    super();
    const c = resolveVQModelConfig(config as Record<string, unknown>);
    this.config = c;
    const coder = { blockOutChannels: c.block_out_channels, layersPerBlock: c.layers_per_block, normNumGroups: c.norm_num_groups };
    const embedDim = c.vq_embed_dim ?? c.latent_channels;
    this.encoder = this.registerModule("encoder", new Encoder(c.in_channels, c.latent_channels, { ...coder, doubleZ: false }));
    this.quantConv = this.registerModule("quant_conv", new Conv2d(c.latent_channels, embedDim, 1));
    this.quantize = this.registerModule("quantize", new VectorQuantizer(c.num_vq_embeddings, embedDim));
    this.postQuantConv = this.registerModule("post_quant_conv", new Conv2d(embedDim, c.latent_channels, 1));
    this.decoder = this.registerModule("decoder", new Decoder(c.latent_channels, c.out_channels, coder));
  }

  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** Channels of the latents `encode` returns and `decode` takes (vq_embed_dim, or latent_channels). */
  get latentChannels(): number {
    return this.quantize.embedding.embeddingDim;
  }

  /** The latents of images `x` [B, in_channels, H, W], before quantization (diffusers' VQModel.encode(x).latents). */
  encode(x: Tensor): Tensor {
    checkInput("encode", x, this.config.in_channels, "images");
    return torch.tidy(() => this.quantConv.forward(this.encoder.forward(x)));
  }

  /** Images from latents `h` [B, D, h, w]: quantized (unless forceNotQuantize), post_quant_conv, Decoder. */
  decode(h: Tensor, { forceNotQuantize = false }: { forceNotQuantize?: boolean } = {}): Tensor {
    checkInput("decode", h, this.latentChannels, "latents");
    return torch.tidy(() => {
      const quant = forceNotQuantize ? h : this.quantize.forward(h).quantized;
      return this.decoder.forward(this.postQuantConv.forward(quant));
    });
  }

  /** The codebook vectors nearest to latents `h`, with the codebook loss and the chosen codes. */
  quantizeLatents(h: Tensor): Quantized {
    checkInput("quantize", h, this.latentChannels, "latents");
    return this.quantize.forward(h);
  }

  /** decode(encode(sample)): the reconstruction. */
  forward(sample: Tensor): Tensor {
    return torch.tidy(() => this.decode(this.encode(sample)));
  }

  /**
   * Loads a VQModel folder (config.json + diffusion_pytorch_model.safetensors), or the vqvae/ (or
   * vae/) of a pipeline folder. Legacy attention names load as for the UNet.
   */
  static fromPretrained(dir: string): VQModel {
    return loadAutoencoder(dir, VQ_MODEL_FOLDERS, resolveVQModelConfig, (config) => new VQModel(config));
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (atomically) into `dir`. */
  savePretrained(dir: string): void {
    writeModelFolder(dir, this.config, this.stateDict());
  }
}
