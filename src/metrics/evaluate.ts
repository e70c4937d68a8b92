// One evaluation of a (pruned) model against its reference: size, FID, consistency (SSIM/MSE on
// shared initial noise) and latency, as the plain object `diffprune eval` writes to metrics.json.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { OptionError } from "../io/index.js";
import type { ImageDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import { defaultClassLabels, generateImages, imageShape, samplingScheduler, type Autoencoder, type Scheduler, type SkipType } from "../diffusion/index.js";
import { countOpsAndParams, unetForward } from "../pruning/index.js";
import { compareSamples } from "./consistency.js";
import type { FeatureExtractor } from "./extractors/extractor.js";
import { datasetStats, fid } from "./fid.js";
import { measureLatency, type Latency } from "./latency.js";

export interface EvaluateOptions {
  model: UNet2DModel;
  /** A latent pipeline's autoencoder: the model's samples are its decoded latents. */
  autoencoder?: Autoencoder | null;
  /** The model it is compared with (the unpruned original); SSIM needs one. */
  reference?: UNet2DModel | null;
  /** The reference's autoencoder, when it is a latent pipeline. */
  referenceAutoencoder?: Autoencoder | null;
  /** The training schedule; sampling uses DDIM with eta 0 on it. */
  scheduler: Scheduler;
  /** Initial noise [N, C, H, W] for the samples FID and SSIM use (both see them 8-bit, as saved); needed when either is asked for. */
  noise?: Tensor;
  /**
   * Samples made earlier (8-bit, as quantize8bit makes them), used instead of sampling from
   * `noise`: the model's, and the reference's for SSIM.
   */
  samples?: { model: Tensor; reference?: Tensor | null } | null;
  /** DDIM steps; default 100. */
  steps?: number;
  /** DDIM's timesteps (see SkipType); default "uniform", the paper's sampler. */
  skip?: SkipType;
  /** Images denoised at once; default 64. */
  batchSize?: number;
  /** FID: the extractor, and the dataset (with its spec, the cache key) it compares with. */
  fid?: { extractor: FeatureExtractor; dataset: ImageDataset; spec: string; limit?: number } | null;
  ssim?: boolean;
  /** Latency: batch sizes timed (default [1, 64]), warm-up and timed runs. */
  latency?: { batchSizes?: number[]; warmup?: number; repeats?: number } | null;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface LatencyReport {
  batch_size: number;
  median_ms: number;
  runs_ms: number[];
}

export interface EvalReport {
  params: { model: number; reference: number | null };
  /** Per image (batch 1), by Torch-Pruning's rules as the paper counts them. */
  macs: { model: number; reference: number | null };
  sampler: { scheduler: "ddim"; eta: 0; steps: number; skip: SkipType; num_samples: number } | null;
  fid: { extractor: string; dataset: string; num_samples: number; num_reference: number; model: number; reference: number | null } | null;
  ssim: { mean: number; mse: number; num_samples: number; image_range: "[0, 1]" } | null;
  latency: {
    warmup: number;
    repeats: number;
    model: LatencyReport[];
    reference: LatencyReport[] | null;
    /** Reference time / model time, by batch size ("batch1", "batch64"). */
    speedup: Record<string, number> | null;
  } | null;
}

/**
 * Samples as a saved PNG holds them (8 bits, rounded as io's writer does), mapped back to
 * [-1, 1] as the datasets map their bytes: FID's reference images are 8-bit, and pytorch-fid
 * users measure saved sample folders, so the figures stay comparable.
 */
export function quantize8bit(x: Tensor): Tensor {
  return torch.tidy(() => x.add(1).mul(127.5).add(0.5).floor().clamp(0, 255).div(127.5).sub(1));
}

const macsOf = (m: UNet2DModel): number => countOpsAndParams(m, unetForward(m)).macs;

const report = (l: Latency): LatencyReport => ({ batch_size: l.batchSize, median_ms: l.medianMs, runs_ms: l.runsMs });

/** The images a model (with its autoencoder, if any) makes, as "CxHxW". */
function imagesOf(m: UNet2DModel, ae: Autoencoder | null): string {
  const { channels, size } = imageShape(m, ae);
  return `${channels}x${size}x${size}`;
}

/**
 * Samples of `m` (decoded by `ae` for a latent pipeline; a class table's classes in turn) from
 * `noise`, as evaluate measures them: DDIM with eta 0, 8-bit. The caller disposes them.
 */
export function evaluationSamples(
  m: UNet2DModel,
  ae: Autoencoder | null,
  scheduler: Scheduler,
  noise: Tensor,
  o: { steps: number; skip: SkipType; batchSize: number; onStep?: (done: number, total: number) => void },
): Tensor {
  const classLabels = defaultClassLabels(m.config, noise.shape[0]!, "evaluate");
  const sampler = samplingScheduler(scheduler, "ddim");
  let raw: Tensor;
  try {
    raw = generateImages({ model: m, autoencoder: ae }, sampler, noise, {
      numInferenceSteps: o.steps,
      eta: 0,
      skip: o.skip,
      batchSize: o.batchSize,
      ...(classLabels ? { classLabels } : {}),
      ...(o.onStep ? { onStep: o.onStep } : {}),
    });
  } finally {
    sampler.dispose(); // its schedule tensors
  }
  const s = quantize8bit(raw);
  raw.dispose();
  return s;
}

export function evaluate(options: EvaluateOptions): EvalReport {
  const { model, autoencoder = null, reference = null, referenceAutoencoder = null, scheduler, noise, steps = 100, skip = "uniform", batchSize = 64, onProgress } = options;
  const given = options.samples ?? null;
  const needSamples = (Boolean(options.fid) || Boolean(options.ssim)) && !given;
  if (options.ssim && !reference && !given?.reference) throw new OptionError((n) => `SSIM compares the model with a reference: give one (${n("reference")})`);
  if (needSamples && !noise) throw new Error("FID and SSIM need initial noise for sampling");
  if (reference && imagesOf(model, autoencoder) !== imagesOf(reference, referenceAutoencoder))
    throw new Error(`the reference makes ${imagesOf(reference, referenceAutoencoder)} images but the model ${imagesOf(model, autoencoder)}: compare models of the same image shape`);
  const out: EvalReport = {
    params: { model: model.numParameters(), reference: reference?.numParameters() ?? null },
    macs: { model: macsOf(model), reference: reference ? macsOf(reference) : null },
    sampler: null,
    fid: null,
    ssim: null,
    latency: null,
  };

  const owned: Tensor[] = [];
  try {
    let samples: Tensor | null = given?.model ?? null;
    let referenceSamples: Tensor | null = given?.reference ?? null;
    if (needSamples && noise) {
      const n = noise.shape[0]!;
      out.sampler = { scheduler: "ddim", eta: 0, steps, skip, num_samples: n };
      const sample = (m: UNet2DModel, ae: Autoencoder | null, stage: string) => {
        const s = evaluationSamples(m, ae, scheduler, noise, { steps, skip, batchSize, onStep: (done, total) => onProgress?.(stage, done, total) });
        owned.push(s);
        return s;
      };
      samples = sample(model, autoencoder, "sample model");
      if (reference) referenceSamples = sample(reference, referenceAutoencoder, "sample reference");
    }

    if (options.fid && samples) {
      const { extractor, dataset, spec, limit } = options.fid;
      const stats = datasetStats(dataset, extractor, { spec, ...(limit !== undefined ? { limit } : {}), onProgress: (d, t) => onProgress?.("dataset features", d, t) });
      try {
        const m = fid(samples, stats, extractor, { onProgress: (d, t) => onProgress?.("sample features", d, t) });
        const r = referenceSamples ? fid(referenceSamples, stats, extractor).fid : null;
        out.fid = { extractor: extractor.name, dataset: spec, num_samples: m.numSamples, num_reference: m.numReference, model: m.fid, reference: r };
      } finally {
        torch.dispose([stats.mu, stats.sigma]);
      }
    }

    if (options.ssim && samples && referenceSamples) {
      const c = compareSamples(samples, referenceSamples);
      out.ssim = { mean: c.ssim, mse: c.mse, num_samples: c.perImage.length, image_range: "[0, 1]" };
    }
  } finally {
    torch.dispose(owned);
  }

  if (options.latency) {
    const { batchSizes = [1, 64], warmup = 2, repeats = 5 } = options.latency;
    const time = (m: UNet2DModel, stage: string) => {
      onProgress?.(stage, 0, 1);
      const l = measureLatency(m, { batchSizes, warmup, repeats });
      onProgress?.(stage, 1, 1);
      return l;
    };
    const own = time(model, "latency model");
    const ref = reference ? time(reference, "latency reference") : null;
    out.latency = {
      warmup,
      repeats,
      model: own.map(report),
      reference: ref?.map(report) ?? null,
      speedup: ref ? Object.fromEntries(own.map((l, i) => [`batch${l.batchSize}`, ref[i]!.medianMs / l.medianMs])) : null,
    };
  }
  return out;
}
