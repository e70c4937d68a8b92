// Training a diffusion UNet on epsilon-prediction: AdamW with warm-up, gradient clipping, EMA,
// a JSONL log, sample grids, and one-file atomic checkpoints from which a killed run resumes
// with the same result (the random draws of step k depend only on (seed, k), and the data
// order only on (seed, epoch)).
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { AdamW, EMA } from "../nn/index.js";
import { load, makeGrid, parse, saveFile, writePng } from "../io/index.js";
import { DataLoader, type ImageDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import { denoisingLoss } from "./loss.js";
import { generate } from "./sample.js";
import { DDIMScheduler, type Scheduler } from "./schedulers/index.js";

export interface TrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  /** Linear warm-up from 0 over this many steps, then `lrSchedule`. */
  warmupSteps: number;
  lrSchedule: "constant" | "cosine";
  adamBetas: [number, number];
  adamEps: number;
  weightDecay: number;
  /** Max gradient norm (clip_grad_norm_); 0 disables. */
  gradClip: number;
  ema: boolean;
  emaMaxDecay: number;
  emaInvGamma: number;
  emaPower: number;
  /** Random horizontal flips of training images. */
  flip: boolean;
  seed: number;
  checkpointEvery: number;
  /** A sample grid (DDIM, `sampleSteps` steps, fixed noise) every N steps; 0 disables. */
  sampleEvery: number;
  sampleSteps: number;
  numSamples: number;
  logEvery: number;
}

export const TRAIN_DEFAULTS: TrainOptions = {
  steps: 1000,
  batchSize: 64,
  lr: 1e-4,
  warmupSteps: 500,
  lrSchedule: "constant",
  adamBetas: [0.95, 0.999],
  adamEps: 1e-8,
  weightDecay: 1e-6,
  gradClip: 1,
  ema: true,
  emaMaxDecay: 0.9999,
  emaInvGamma: 1,
  emaPower: 3 / 4,
  flip: false,
  seed: 0,
  checkpointEvery: 500,
  sampleEvery: 0,
  sampleSteps: 50,
  numSamples: 16,
  logEvery: 10,
};

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

export interface TrainHooks {
  onStep?: (info: StepInfo) => void;
  onEvent?: (message: string) => void;
}

export const CHECKPOINT_NAME = "checkpoint.safetensors";

/** Options a resumed run may change: they do not touch the optimisation (steps extends it). */
const RESUMABLE_CHANGES = new Set<keyof TrainOptions>(["steps", "checkpointEvery", "sampleEvery", "sampleSteps", "numSamples", "logEvery"]);

/** The learning rate at `step` (0-based). */
export function learningRate(o: Pick<TrainOptions, "lr" | "warmupSteps" | "lrSchedule" | "steps">, step: number): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.lrSchedule === "constant") return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.steps - o.warmupSteps);
  return o.lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** The generator seed of step k: distinct per (seed, step), so a resumed run redraws the same. */
const stepSeed = (seed: number, step: number): number => (seed * 1_000_003 + step) % Number.MAX_SAFE_INTEGER;

/** Runs `fn` with the model's parameters replaced by `weights` (the EMA's), then restores them. */
export function withWeights<T>(model: UNet2DModel, weights: Tensor[], fn: () => T): T {
  const params = model.parameters();
  const backup = torch.noGrad(() => torch.tidy(() => params.map((p) => torch.keep(p.detach().clone()))));
  torch.noGrad(() => params.forEach((p, i) => p.copy_(weights[i]!)));
  try {
    return fn();
  } finally {
    torch.noGrad(() => params.forEach((p, i) => p.copy_(backup[i]!)));
    torch.dispose(backup);
  }
}

export class Trainer {
  readonly model: UNet2DModel;
  readonly scheduler: Scheduler;
  readonly options: TrainOptions;
  readonly outDir: string;
  readonly loader: DataLoader;
  readonly optimizer: AdamW;
  readonly ema: EMA | null;
  /** Steps done. */
  step = 0;
  readonly #params: Tensor[];
  readonly #sampleNoise: Tensor;

  constructor(model: UNet2DModel, scheduler: Scheduler, dataset: ImageDataset, outDir: string, options: Partial<TrainOptions> = {}) {
    this.model = model;
    this.scheduler = scheduler;
    this.options = { ...TRAIN_DEFAULTS, ...options };
    this.outDir = outDir;
    const o = this.options;
    for (const key of ["steps", "batchSize"] as const)
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`train: ${key} must be a positive integer, got ${o[key]}`);
    if (!(o.lr > 0)) throw new RangeError(`train: lr must be positive, got ${o.lr}`);
    const c = model.config;
    if (dataset.channels !== c.in_channels || dataset.height !== c.sample_size || dataset.width !== c.sample_size)
      throw new Error(`train: the data is ${dataset.channels}x${dataset.height}x${dataset.width} but the model takes ${c.in_channels}x${c.sample_size}x${c.sample_size}`);
    this.loader = new DataLoader(dataset, { batchSize: o.batchSize, seed: o.seed, dropLast: true, flipProbability: o.flip ? 0.5 : 0 });
    this.#params = model.parameters();
    this.optimizer = new AdamW(this.#params, { lr: o.lr, betas: o.adamBetas, eps: o.adamEps, weightDecay: o.weightDecay });
    this.ema = o.ema ? new EMA(this.#params, { maxDecay: o.emaMaxDecay, invGamma: o.emaInvGamma, power: o.emaPower }) : null;
    torch.manualSeed(o.seed);
    this.#sampleNoise = torch.keep(torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]));
    mkdirSync(join(outDir, "samples"), { recursive: true });
  }

  get checkpointPath(): string {
    return join(this.outDir, CHECKPOINT_NAME);
  }

  /** One optimisation step on batch number `this.step`. */
  trainStep(): StepInfo {
    const o = this.options;
    const { epoch, position } = this.loader.locate(this.step);
    torch.manualSeed(stepSeed(o.seed, this.step));
    this.model.train();
    const lr = learningRate(o, this.step);
    const { loss, gradNorm } = torch.tidy(() => {
      const x0 = this.loader.batch(epoch, position).images;
      const noise = torch.randnLike(x0);
      const t = torch.randint(0, this.scheduler.numTrainTimesteps, [x0.shape[0]!]);
      const l = denoisingLoss(this.model, this.scheduler, x0, noise, t);
      l.backward();
      const norm = o.gradClip > 0 ? torch.clipGradNorm(this.#params, o.gradClip) : NaN;
      this.optimizer.lr = lr;
      this.optimizer.step();
      this.optimizer.zeroGrad();
      this.ema?.step(this.#params);
      return { loss: l.item(), gradNorm: norm };
    });
    this.step += 1;
    return { step: this.step, loss, lr, gradNorm };
  }

  /** Trains until `options.steps`, checkpointing, logging and sampling on the way. */
  run(hooks: TrainHooks = {}): void {
    const o = this.options;
    const log = join(this.outDir, "log.jsonl");
    let window: number[] = [];
    while (this.step < o.steps) {
      const info = this.trainStep();
      hooks.onStep?.(info);
      window.push(info.loss);
      if (this.step % o.logEvery === 0 || this.step === o.steps) {
        const loss = window.reduce((a, b) => a + b, 0) / window.length;
        appendFileSync(log, JSON.stringify({ step: this.step, loss, lr: info.lr, grad_norm: info.gradNorm, time: new Date().toISOString() }) + "\n");
        window = [];
      }
      if (o.sampleEvery > 0 && (this.step % o.sampleEvery === 0 || this.step === o.steps)) {
        const file = this.writeSampleGrid();
        hooks.onEvent?.(`samples: ${file}`);
      }
      if (this.step % o.checkpointEvery === 0 || this.step === o.steps) {
        this.saveCheckpoint();
        hooks.onEvent?.(`checkpoint at step ${this.step}`);
      }
    }
  }

  /** The weights to sample and ship: the EMA's when there is one. */
  finalWeights(): Tensor[] {
    return this.ema ? this.ema.shadow : this.#params;
  }

  /** A grid of samples from the fixed preview noise (DDIM, EMA weights). */
  writeSampleGrid(): string {
    const scheduler = new DDIMScheduler({ ...this.scheduler.config });
    const samples = withWeights(this.model, this.finalWeights(), () =>
      generate(this.model, scheduler, this.#sampleNoise, { numInferenceSteps: this.options.sampleSteps }),
    );
    const file = join(this.outDir, "samples", `step-${String(this.step).padStart(7, "0")}.png`);
    writePng(file, makeGrid(samples));
    samples.dispose();
    scheduler.dispose();
    return file;
  }

  /** Model, EMA and optimizer state in one atomically written file, the counters in its metadata. */
  saveCheckpoint(): void {
    const tensors = new Map<string, Tensor>();
    const names = Array.from(this.model.namedParameters(), ([n]) => n);
    names.forEach((n, i) => tensors.set(`model.${n}`, this.#params[i]!));
    if (this.ema) names.forEach((n, i) => tensors.set(`ema.${n}`, this.ema!.shadow[i]!));
    for (const [k, t] of this.optimizer.stateDict()) tensors.set(`optimizer.${k}`, t);
    const state = { step: this.step, ema_step: this.ema?.optimizationStep ?? 0, options: this.options };
    saveFile(tensors, this.checkpointPath, { trainer_state: JSON.stringify(state) });
  }

  /** Restores a checkpoint written by saveCheckpoint; the options must match the saved ones. */
  loadCheckpoint(): void {
    const file = this.checkpointPath;
    const bytes = readFileSync(file);
    const meta = checkpointState(bytes, file);
    const tensors = load(bytes, file);
    try {
      const saved = meta.options as TrainOptions;
      const differing = (Object.keys(this.options) as (keyof TrainOptions)[]).filter(
        (k) => !RESUMABLE_CHANGES.has(k) && JSON.stringify(saved[k]) !== JSON.stringify(this.options[k]),
      );
      if (differing.length > 0)
        throw new Error(`${file} was written with other settings (${differing.map((k) => `${k}: ${JSON.stringify(saved[k])}`).join(", ")}); resume with the same settings or train into a new folder`);
      const model = new Map<string, Tensor>();
      const ema: Tensor[] = [];
      const optimizer = new Map<string, Tensor>();
      for (const [k, t] of tensors) {
        if (k.startsWith("model.")) model.set(k.slice(6), t);
        else if (k.startsWith("optimizer.")) optimizer.set(k.slice(10), t);
      }
      this.model.loadStateDict(model);
      this.optimizer.loadStateDict(optimizer, meta.step);
      if (this.ema) {
        for (const [n] of this.model.namedParameters()) {
          const t = tensors.get(`ema.${n}`);
          if (!t) throw new Error(`${file} has no EMA weights for ${n}`);
          ema.push(t);
        }
        torch.noGrad(() => this.ema!.shadow.forEach((s, i) => s.copy_(ema[i]!)));
        this.ema.optimizationStep = meta.ema_step;
      }
      this.step = meta.step;
      truncateLog(join(this.outDir, "log.jsonl"), this.step);
    } finally {
      torch.dispose([...tensors.values()]);
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
    this.#sampleNoise.dispose();
  }
}

/** The counters and options stored in a checkpoint's metadata. */
export function checkpointState(bytes: Uint8Array, file: string): { step: number; ema_step: number; options: TrainOptions } {
  const state = parse(bytes, file).metadata.trainer_state;
  if (!state) throw new Error(`${file} is not a diffprune training checkpoint (no trainer_state)`);
  return JSON.parse(state) as { step: number; ema_step: number; options: TrainOptions };
}

/** Drops log lines past `step` (written after the checkpoint a run resumes from). */
function truncateLog(file: string, step: number): void {
  if (!existsSync(file)) return;
  const kept = readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "" && (JSON.parse(line) as { step: number }).step <= step);
  writeFileSync(file, kept.map((l) => l + "\n").join(""));
}
