// Sampling: run the reverse process from initial noise with DDPM or DDIM, with class labels for
// a class-conditional model.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import { classLabelTensor, ClassLabelError, type ClassConditioning, type ClassLabelsInput } from "./class-labels.js";
import { DDIMScheduler, DDPMScheduler, type Scheduler, type SkipType } from "./schedulers/index.js";

export type SchedulerName = "ddim" | "ddpm";

export interface GenerateOptions {
  /** Inference steps (default: 100 for DDIM, every training step for DDPM). */
  numInferenceSteps?: number;
  /** DDIM's eta: 0 is deterministic. */
  eta?: number;
  /** DDIM's timesteps (see SkipType); default "uniform", the paper's sampler. */
  skip?: SkipType;
  /** Images denoised at once (memory); default 64. */
  batchSize?: number;
  /** Called after every denoising step of every batch. */
  onStep?: (done: number, total: number) => void;
  /**
   * The class of each sample, for a class-conditional model (required there, refused elsewhere):
   * one number for all, one per sample (an array or int64 [N]), or the embeddings [N, D] of an
   * "identity" model. Split into batches with the noise.
   */
  classLabels?: ClassLabelsInput;
}

/** A sampling scheduler with the training schedule of `base` (as diffusers' from_config). */
export function samplingScheduler(base: Scheduler, name: SchedulerName): Scheduler {
  const config = { ...base.config };
  return name === "ddim" ? new DDIMScheduler(config) : new DDPMScheduler(config);
}

/** A model whose noise prediction arrives later (a model in another runtime): what generateAsync samples with. */
export interface AsyncDenoiser {
  /** `classLabels`: the batch's slice of GenerateOptions.classLabels (undefined for an unconditional model). */
  forward(sample: Tensor, timestep: number, classLabels?: Tensor): Promise<Tensor>;
  /** The UNet's config, when known: labels are checked against it as for a UNet2DModel. */
  readonly config?: ClassConditioning;
}

/**
 * Denoises `noise` [N, C, H, W] into samples (raw model-space values, about [-1, 1]). Stochastic
 * steps (DDPM, DDIM with eta > 0) draw from torch's generator: seed it for reproducible output.
 */
export function generate(model: UNet2DModel, scheduler: Scheduler, noise: Tensor, options: GenerateOptions = {}): Tensor {
  const labels = classLabelTensor(model.config, options.classLabels, noise.shape[0]!, "generate", noise.device);
  const wasTraining = model.training;
  model.eval();
  try {
    const loop = denoisingLoop(scheduler, noise, options, labels);
    let next = loop.next();
    while (!next.done) {
      const [x, t, l] = next.value;
      // a bfloat16 model's prediction, widened: the scheduler's arithmetic stays in x's float32
      next = loop.next(torch.noGrad(() => torch.tidy(() => model.forward(x, t, l).to(x.dtype))));
    }
    return next.value;
  } finally {
    model.train(wasTraining);
    labels?.dispose();
  }
}

/** generate() with a model that predicts asynchronously (an onnxruntime session): the same loop. */
export async function generateAsync(model: AsyncDenoiser, scheduler: Scheduler, noise: Tensor, options: GenerateOptions = {}): Promise<Tensor> {
  const labels = asyncLabels(model, options.classLabels, noise.shape[0]!);
  try {
    const loop = denoisingLoop(scheduler, noise, options, labels);
    let next = loop.next();
    while (!next.done) {
      const [x, t, l] = next.value;
      next = loop.next(await model.forward(x, t, l));
    }
    return next.value;
  } finally {
    labels?.dispose();
  }
}

/** generateAsync's labels, checked against the model's config; a model with no config takes none. */
function asyncLabels(model: AsyncDenoiser, given: ClassLabelsInput | undefined, n: number): Tensor | undefined {
  if (model.config !== undefined) return classLabelTensor(model.config, given, n, "generateAsync");
  if (given !== undefined) throw new ClassLabelError("generateAsync: class labels were given, but this model has no config saying how it is conditioned");
  return undefined;
}

/**
 * The sampling loop, as a coroutine so that a model that answers now and one that answers later
 * share it: yields [x, t, the batch's labels] for each noise prediction, takes the prediction
 * (and disposes it), and returns the samples.
 */
function* denoisingLoop(scheduler: Scheduler, noise: Tensor, options: GenerateOptions, labels?: Tensor): Generator<[Tensor, number, Tensor | undefined], Tensor, Tensor> {
  const { eta = 0, skip = "uniform", batchSize = 64, onStep } = options;
  const steps = options.numInferenceSteps ?? (scheduler instanceof DDIMScheduler ? 100 : scheduler.numTrainTimesteps);
  if (scheduler instanceof DDIMScheduler) scheduler.setTimesteps(steps, { skip });
  else scheduler.setTimesteps(steps);
  const timesteps = scheduler.timesteps;
  const n = noise.shape[0]!;
  const batches = Math.ceil(n / batchSize);
  const outputs: Tensor[] = [];
  let done = 0;
  for (let b = 0; b < batches; b++) {
    const size = Math.min(batchSize, n - b * batchSize);
    let x = torch.tidy(() => torch.keep(noise.narrow(0, b * batchSize, size).mul(scheduler.initNoiseSigma)));
    const batchLabels = labels?.narrow(0, b * batchSize, size);
    for (const t of timesteps) {
      const eps = yield [x, t, batchLabels];
      const next = torch.noGrad(() =>
        torch.tidy(() => {
          const out = scheduler instanceof DDIMScheduler ? scheduler.step(eps, t, x, { eta }) : scheduler.step(eps, t, x);
          return out.prevSample;
        }),
      );
      eps.dispose();
      x.dispose();
      x = torch.keep(next);
      onStep?.(++done, batches * timesteps.length);
    }
    batchLabels?.dispose();
    outputs.push(x);
  }
  // A fresh (not kept) tensor either way, so the result belongs to the caller's scope.
  const all = outputs.length === 1 ? outputs[0]!.clone() : torch.cat(outputs, 0);
  torch.dispose(outputs);
  return all;
}
