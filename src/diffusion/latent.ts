// Latent diffusion: the UNet denoises an autoencoder's latents and the decoder makes the images.
// One convention says what "the latents" are, for sampling, calibration and training alike, so
// that what the UNet learns on is what the decoder takes:
// - VQModel (diffusers' LDMPipeline; CompVis' LatentDiffusion with a VQ first stage, whose
//   scale_factor is 1): latents = encode(x), before quantization and unscaled (LDMPipeline never
//   reads scaling_factor); images = decode(latents), which snaps them to the codebook.
// - AutoencoderKL (diffusers' training scripts and pipelines): latents = a posterior sample times
//   scaling_factor; images = decode(latents / scaling_factor).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import { VQModel } from "../models/index.js";
import { generate, type GenerateOptions } from "./sample.js";
import type { Scheduler } from "./schedulers/index.js";
import type { Autoencoder, Pipeline } from "./pipeline.js";

/** The latents of some images, at the scale the UNet works in: their mean, and for AutoencoderKL the posterior's std. */
export interface LatentPosterior {
  /** VQModel: encode(x); AutoencoderKL: the posterior's mean times scaling_factor. */
  mean: Tensor;
  /** AutoencoderKL: the posterior's std times scaling_factor (a sample is mean + std * noise); VQModel: null. */
  std: Tensor | null;
}

/** The latents of `images` [B, C, H, W] in [-1, 1], as the UNet sees them (no gradients). */
export function encodeLatents(ae: Autoencoder, images: Tensor): LatentPosterior {
  return torch.noGrad(() =>
    torch.tidy(() => {
      if (ae instanceof VQModel) return { mean: ae.encode(images), std: null };
      const posterior = ae.encode(images);
      const s = ae.scalingFactor;
      return { mean: posterior.mode().mul(s), std: posterior.std.mul(s) };
    }),
  );
}

/** Images (about [-1, 1]) from latents as the UNet makes them, decoded `batchSize` at a time (no gradients). */
export function decodeLatents(ae: Autoencoder, latents: Tensor, { batchSize = 64 }: { batchSize?: number } = {}): Tensor {
  const n = latents.shape[0]!;
  return torch.noGrad(() =>
    torch.tidy(() => {
      const parts: Tensor[] = [];
      for (let b = 0; b < n; b += batchSize) {
        const z = n <= batchSize ? latents : latents.narrow(0, b, Math.min(batchSize, n - b));
        parts.push(ae instanceof VQModel ? ae.decode(z) : ae.decode(z.div(ae.scalingFactor)));
      }
      return parts.length === 1 ? parts[0]! : torch.cat(parts, 0);
    }),
  );
}

/** The images a latent pipeline reads and makes: the autoencoder's channels, at the UNet's latent size times the encoder's downsampling. */
export function imageShape(model: UNet2DModel, ae: Autoencoder | null): { channels: number; size: number } {
  const c = model.config;
  if (!ae) return { channels: c.in_channels, size: c.sample_size };
  return { channels: ae.config.in_channels, size: c.sample_size * 2 ** (ae.config.block_out_channels.length - 1) };
}

/**
 * Samples of a pipeline from initial noise [N, C, H, W] (the UNet's input: latents for a latent
 * pipeline): generate's loop, then, with an autoencoder, its decoder, as diffusers' LDMPipeline.
 * Returns images in the model's range (about [-1, 1]).
 */
export function generateImages(pipeline: Pick<Pipeline, "model" | "autoencoder">, scheduler: Scheduler, noise: Tensor, options: GenerateOptions = {}): Tensor {
  const samples = generate(pipeline.model, scheduler, noise, options);
  if (!pipeline.autoencoder) return samples;
  try {
    return decodeLatents(pipeline.autoencoder, samples, options.batchSize === undefined ? {} : { batchSize: options.batchSize });
  } finally {
    samples.dispose();
  }
}
