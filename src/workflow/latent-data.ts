// Training data of a latent UNet: a dataset's images encoded once by the pipeline's autoencoder
// (as diffprune/diffusion/latent.ts defines the latents) and cached on disk, in $DIFFPRUNE_CACHE
// as the FID statistics are. The cache key holds a hash of the encoder's weights, so latents of
// another encoder are never reused. A trainer whose previews are decoded into images.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { loadFile, makeGrid, saveFile, writePng } from "../io/index.js";
import type { ImageDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import {
  cycledClassLabels,
  DDIMScheduler,
  encodeLatents,
  generateImages,
  isClassConditional,
  Trainer,
  stepName,
  withWeights,
  type Autoencoder,
  type Scheduler,
  type TrainOptions,
} from "../diffusion/index.js";
import { cacheDir } from "../metrics/stats-cache.js";

/** Bumped when what the cache holds changes meaning. */
const CACHE_VERSION = 1;

/** A hash of what maps images to latents: the encoder and quant_conv weights, the class and (KL) scaling_factor. */
export function encoderHash(ae: Autoencoder): string {
  const hash = createHash("sha256").update(JSON.stringify([ae.config._class_name, ae.config._class_name === "AutoencoderKL" ? ae.scalingFactor : null]));
  const state = [...ae.stateDict()].filter(([k]) => k.startsWith("encoder.") || k.startsWith("quant_conv.")).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, t] of state) {
    const a = t.toTypedArray();
    hash.update(`${name}:${t.dtype}:${t.shape.join("x")};`).update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return hash.digest("hex");
}

/** Where the latents of `spec` by an encoder of hash `encoder` are cached. */
export function latentCachePath(spec: string, images: ImageDataset, encoder: string): string {
  const key = JSON.stringify([CACHE_VERSION, spec, images.length, images.channels, images.height, images.width, encoder]);
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 16);
  const slug = spec.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 40);
  return join(cacheDir(), "latents", `${slug}-n${images.length}-${hash}.safetensors`);
}

/**
 * A dataset of latents, [N, C, h, w] at the scale the UNet sees: VQModel latents as they are; for
 * AutoencoderKL each batch is a fresh posterior sample mean + std * noise (drawn from torch's
 * generator, which the trainer seeds per step, so a resumed run draws the same), as diffusers'
 * training scripts sample `latent_dist` every step. Labels and class names are the images'.
 */
export class LatentDataset implements ImageDataset {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly name?: string;
  readonly labels?: Int32Array;
  readonly classes?: readonly string[];
  readonly #mean: Tensor;
  readonly #std: Tensor | null;

  constructor(mean: Tensor, std: Tensor | null, source: Pick<ImageDataset, "name" | "labels" | "classes">) {
    this.#mean = torch.keep(mean);
    this.#std = std === null ? null : torch.keep(std);
    [this.length, this.channels, this.height, this.width] = mean.shape as [number, number, number, number];
    if (source.name !== undefined) this.name = `${source.name} (latents)`;
    if (source.labels !== undefined) this.labels = source.labels;
    if (source.classes !== undefined) this.classes = source.classes;
  }

  /** The latents at `indices` (float32 [B, C, h, w]; not in [-1, 1] as images are). */
  getBatch(indices: readonly number[]): Tensor {
    return torch.tidy(() => {
      const at = torch.tensor([...indices], { dtype: "int64" });
      const mean = this.#mean.indexSelect(0, at);
      return this.#std === null ? mean : mean.add(this.#std.indexSelect(0, at).mul(torch.randnLike(mean)));
    });
  }

  dispose(): void {
    this.#mean.dispose();
    this.#std?.dispose();
  }
}

export interface LatentDataOptions {
  /** The images' dataset spec: part of the cache key. */
  spec: string;
  /** Images encoded at once (default 64). */
  batchSize?: number;
  /** Encoding progress: images done, of all. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * The latents of every image of `images` by `ae`, read from the cache, or encoded (in order,
 * without gradients) and cached. `cached` says which; `file` is the cache file.
 */
export function latentDataset(ae: Autoencoder, images: ImageDataset, o: LatentDataOptions): { dataset: LatentDataset; file: string; cached: boolean } {
  const file = latentCachePath(o.spec, images, encoderHash(ae));
  const kl = ae.config._class_name === "AutoencoderKL";
  const fromCache = readCache(file, images.length, ae.latentChannels, kl);
  if (fromCache) return { dataset: new LatentDataset(fromCache.mean, fromCache.std, images), file, cached: true };
  const batchSize = o.batchSize ?? 64;
  const means: Tensor[] = [];
  const stds: Tensor[] = [];
  for (let start = 0; start < images.length; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, images.length - start) }, (_, i) => start + i);
    const { mean, std } = torch.tidy(() => {
      const x = images.getBatch(indices);
      const posterior = encodeLatents(ae, x);
      return { mean: torch.keep(posterior.mean), std: posterior.std === null ? null : torch.keep(posterior.std) };
    });
    means.push(mean);
    if (std) stds.push(std);
    o.onProgress?.(start + indices.length, images.length);
  }
  const mean = torch.cat(means, 0);
  const std = kl ? torch.cat(stds, 0) : null;
  torch.dispose([...means, ...stds]);
  mkdirSync(join(cacheDir(), "latents"), { recursive: true });
  saveFile(std ? { mean, std } : { mean }, file, {
    dataset: o.spec,
    count: String(images.length),
    autoencoder: ae.config._class_name,
    latents: kl ? "posterior mean and std, times scaling_factor" : "encode(x), before quantization, unscaled",
  });
  return { dataset: new LatentDataset(mean, std, images), file, cached: false };
}

/** The cached latents, or null when absent, unreadable or not of this dataset and encoder (then they are encoded again). */
function readCache(file: string, count: number, channels: number, kl: boolean): { mean: Tensor; std: Tensor | null } | null {
  if (!existsSync(file)) return null;
  let tensors: Map<string, Tensor>;
  try {
    tensors = loadFile(file);
  } catch {
    return null; // a truncated or foreign file: encode again and overwrite
  }
  const mean = tensors.get("mean");
  const std = tensors.get("std") ?? null;
  const fits = (t: Tensor | null) => t !== null && t.dtype === "float32" && t.ndim === 4 && t.shape[0] === count && t.shape[1] === channels;
  if (!fits(mean ?? null) || (kl ? !fits(std) || std!.shape.join() !== mean!.shape.join() : std !== null)) {
    torch.dispose([...tensors.values()]);
    return null;
  }
  return { mean: mean!, std };
}

/** The preview classes of a class-conditional model (0..K-1 cycled, as the trainer's own grids), else undefined. */
function previewLabels(model: UNet2DModel, dataset: ImageDataset, n: number): number[] | undefined {
  const c = model.config;
  if (!isClassConditional(c)) return undefined;
  let largest = 0;
  for (const l of dataset.labels ?? []) largest = Math.max(largest, l);
  const k = c.class_embed_type == null && c.num_class_embeds != null ? c.num_class_embeds : (dataset.classes?.length ?? largest + 1);
  return cycledClassLabels(k, n);
}

/** A Trainer on latents whose preview grids are decoded into images by the pipeline's autoencoder. */
export class LatentTrainer extends Trainer {
  readonly autoencoder: Autoencoder;
  readonly #noise: Tensor;
  readonly #labels: number[] | undefined;

  constructor(model: UNet2DModel, autoencoder: Autoencoder, scheduler: Scheduler, dataset: ImageDataset, outDir: string, options: Partial<TrainOptions> = {}) {
    super(model, scheduler, dataset, outDir, options);
    this.autoencoder = autoencoder;
    const o = this.options;
    const c = model.config;
    // the trainer's preview noise, drawn again from the same seed
    torch.manualSeed(o.seed);
    this.#noise = torch.keep(torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]));
    this.#labels = previewLabels(model, dataset, o.numSamples);
  }

  override writeSampleGrid(): string {
    const scheduler = new DDIMScheduler({ ...this.scheduler.config });
    const options = { numInferenceSteps: this.options.sampleSteps, ...(this.#labels ? { classLabels: this.#labels } : {}) };
    const images = withWeights(this.model, this.finalWeights(), () => generateImages({ model: this.model, autoencoder: this.autoencoder }, scheduler, this.#noise, options));
    const file = join(this.outDir, "samples", `${stepName(this.step)}.png`);
    writePng(file, makeGrid(images));
    images.dispose();
    scheduler.dispose();
    return file;
  }

  override dispose(): void {
    super.dispose();
    this.#noise.dispose();
  }
}
