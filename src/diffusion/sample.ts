// Sampling: run the reverse process from initial noise with DDPM or DDIM.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
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
}

/** A sampling scheduler with the training schedule of `base` (as diffusers' from_config). */
export function samplingScheduler(base: Scheduler, name: SchedulerName): Scheduler {
  const config = { ...base.config };
  return name === "ddim" ? new DDIMScheduler(config) : new DDPMScheduler(config);
}

/** A model whose noise prediction arrives later (a model in another runtime): what generateAsync samples with. */
export interface AsyncDenoiser {
  forward(sample: Tensor, timestep: number): Promise<Tensor>;
}

/**
 * Denoises `noise` [N, C, H, W] into samples (raw model-space values, about [-1, 1]). Stochastic
 * steps (DDPM, DDIM with eta > 0) draw from torch's generator: seed it for reproducible output.
 */
export function generate(model: UNet2DModel, scheduler: Scheduler, noise: Tensor, options: GenerateOptions = {}): Tensor {
  const wasTraining = model.training;
  model.eval();
  try {
    const loop = denoisingLoop(scheduler, noise, options);
    let next = loop.next();
    while (!next.done) {
      const [x, t] = next.value;
      next = loop.next(torch.noGrad(() => model.forward(x, t)));
    }
    return next.value;
  } finally {
    model.train(wasTraining);
  }
}

/** generate() with a model that predicts asynchronously (an onnxruntime session): the same loop. */
export async function generateAsync(model: AsyncDenoiser, scheduler: Scheduler, noise: Tensor, options: GenerateOptions = {}): Promise<Tensor> {
  const loop = denoisingLoop(scheduler, noise, options);
  let next = loop.next();
  while (!next.done) next = loop.next(await model.forward(...next.value));
  return next.value;
}

/**
 * The sampling loop, as a coroutine so that a model that answers now and one that answers later
 * share it: yields [x, t] for each noise prediction, takes the prediction (and disposes it), and
 * returns the samples.
 */
function* denoisingLoop(scheduler: Scheduler, noise: Tensor, options: GenerateOptions): Generator<[Tensor, number], Tensor, Tensor> {
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
    let x = torch.tidy(() => torch.keep(noise.narrow(0, b * batchSize, Math.min(batchSize, n - b * batchSize)).mul(scheduler.initNoiseSigma)));
    for (const t of timesteps) {
      const eps = yield [x, t];
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
    outputs.push(x);
  }
  // A fresh (not kept) tensor either way, so the result belongs to the caller's scope.
  const all = outputs.length === 1 ? outputs[0]!.clone() : torch.cat(outputs, 0);
  torch.dispose(outputs);
  return all;
}
