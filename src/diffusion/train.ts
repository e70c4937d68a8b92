// Training a diffusion UNet on epsilon-prediction: AdamW with warm-up, gradient clipping, EMA,
// a JSONL log, sample grids, and one-file atomic checkpoints from which a killed run resumes
// with the same result (the random draws of step k depend only on (seed, k), and the data
// order only on (seed, epoch)). A run that diverges stops at the step where it does, before
// any non-finite weights are saved. A class-conditional model trains on the dataset's labels.
// In a torch.distributed group the trainer is data-parallel with DDP's semantics: every rank
// starts from rank 0's state, trains on its share of each global batch's draws, and averages
// gradients before the update; rank 0 alone writes.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { AdamW, EMA } from "../nn/index.js";
import { load, makeGrid, OptionError, saveFile, writePng, type OptionMessage } from "../io/index.js";
import { DataLoader, type ImageDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import { checkClassLabels, ClassLabelError, classLabelTensor, conditioningName, cycledClassLabels, isClassConditional } from "./class-labels.js";
import { denoisingLoss } from "./loss.js";
import { generate } from "./sample.js";
import { DDIMScheduler, type Scheduler } from "./schedulers/index.js";
import { appendLogEntry, LOG_NAME, readRunLog, stepName, trimRunLog } from "./run-log.js";
import { CheckpointError, checkpointState, RESUMABLE_CHANGES, TRAIN_DEFAULTS, type TrainerState, type TrainOptions } from "./train-options.js";

export { CheckpointError, checkpointState, TRAIN_DEFAULTS, type TrainerState, type TrainOptions };

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

export interface TrainHooks {
  onStep?: (info: StepInfo) => void;
  onEvent?: (message: string) => void;
  /** Every `snapshotEvery` steps (rank 0): write the shipped weights (finalWeights) as a model folder. */
  onSnapshot?: (step: number) => void;
}

export const CHECKPOINT_NAME = "checkpoint.safetensors";

/** Training stopped because the loss, the gradient or the weights stopped being finite. */
export class TrainingDivergedError extends OptionError {
  override name = "TrainingDivergedError";
  constructor(
    describe: OptionMessage,
    /** The step (1-based, as in the log) at which it happened. */
    readonly step: number,
  ) {
    super(describe);
  }
}

/** The learning rate at `step` (0-based). */
export function learningRate(o: Pick<TrainOptions, "lr" | "warmupSteps" | "lrSchedule" | "steps">, step: number): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.lrSchedule === "constant") return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.steps - o.warmupSteps);
  return o.lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** The generator seed of step k: distinct per (seed, step), so a resumed run redraws the same. */
export const stepSeed = (seed: number, step: number): number => (seed * 1_000_003 + step) % Number.MAX_SAFE_INTEGER;

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
  /** Milliseconds, for the time-based checkpoints (a test gives a fake one). */
  clock: () => number = () => performance.now();
  readonly #params: Tensor[];
  readonly #sampleNoise: Tensor;
  /** The classes of the preview samples (0..K-1 cycled), for a class-conditional model. */
  readonly #sampleLabels: number[] | undefined;
  /** The losses of the steps since the last log entry (saved with a checkpoint). */
  #lossWindow: number[] = [];
  /** The step of the checkpoint on disk, written or resumed from by this trainer. */
  #checkpointStep: number | null = null;
  /** This process's place in the data-parallel group; null when it trains alone. */
  readonly #ddp: DataParallel | null;

  constructor(model: UNet2DModel, scheduler: Scheduler, dataset: ImageDataset, outDir: string, options: Partial<TrainOptions> = {}) {
    this.model = model;
    this.scheduler = scheduler;
    this.options = { ...TRAIN_DEFAULTS, ...options };
    this.outDir = outDir;
    const o = this.options;
    for (const key of ["steps", "batchSize"] as const)
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`train: ${key} must be a positive integer, got ${o[key]}`);
    if (!(o.lr > 0)) throw new RangeError(`train: lr must be positive, got ${o.lr}`);
    if (!(o.checkpointSeconds >= 0)) throw new RangeError(`train: checkpointSeconds must be 0 (off) or positive, got ${o.checkpointSeconds}`);
    const c = model.config;
    if (dataset.channels !== c.in_channels || dataset.height !== c.sample_size || dataset.width !== c.sample_size)
      throw new Error(`train: the data is ${dataset.channels}x${dataset.height}x${dataset.width} but the model takes ${c.in_channels}x${c.sample_size}x${c.sample_size}`);
    this.#ddp = dataParallel(o.batchSize);
    const classes = trainingClasses(model, dataset);
    this.#sampleLabels = classes === undefined ? undefined : cycledClassLabels(classes, o.numSamples);
    this.loader = new DataLoader(dataset, { batchSize: o.batchSize, seed: o.seed, dropLast: true, flipProbability: o.flip ? 0.5 : 0 });
    this.#params = model.parameters();
    this.optimizer = new AdamW(this.#params, { lr: o.lr, betas: o.adamBetas, eps: o.adamEps, weightDecay: o.weightDecay });
    this.ema = o.ema ? new EMA(this.#params, { maxDecay: o.emaMaxDecay, invGamma: o.emaInvGamma, power: o.emaPower }) : null;
    torch.manualSeed(o.seed);
    this.#sampleNoise = torch.keep(torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]));
    if (torch.distributed.isMainProcess()) mkdirSync(join(outDir, "samples"), { recursive: true });
  }

  get checkpointPath(): string {
    return join(this.outDir, CHECKPOINT_NAME);
  }

  get logPath(): string {
    return join(this.outDir, LOG_NAME);
  }

  /**
   * One optimisation step on batch number `this.step`. Throws TrainingDivergedError when the
   * loss or the gradient norm is not finite (before the weights change) or the weights are not
   * after the update.
   */
  trainStep(): StepInfo {
    const o = this.options;
    const { epoch, position } = this.loader.locate(this.step);
    torch.manualSeed(stepSeed(o.seed, this.step));
    this.model.train();
    const lr = learningRate(o, this.step);
    try {
      const { loss, gradNorm } = torch.tidy(() => {
        const batch = this.loader.batch(epoch, position);
        let x0 = batch.images;
        let noise = torch.randnLike(x0);
        let t = torch.randint(0, this.scheduler.numTrainTimesteps, [x0.shape[0]!]);
        // labels draw nothing: the noise and timesteps of a step are those of an unconditional run
        const c = this.model.config;
        let labels = isClassConditional(c) ? classLabelTensor(c, batch.labels, x0.shape[0]!, "train", x0.device) : undefined;
        const ddp = this.#ddp;
        if (ddp) {
          // the draws were those of the whole global batch; this rank takes its rows
          const shard = (x: Tensor) => x.narrow(0, ddp.rank * ddp.shard, ddp.shard);
          [x0, noise, t] = [shard(x0), shard(noise), shard(t)];
          if (labels) labels = shard(labels);
        }
        const l = denoisingLoss(this.model, this.scheduler, x0, noise, t, labels);
        l.backward();
        let lossValue = l.detach();
        if (ddp) {
          // the global batch's mean gradient and loss: equal shards, so the mean of the ranks' means
          lossValue = lossValue.reshape([1]);
          const grads = this.#params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
          torch.distributed.allReduce([...grads, lossValue], "avg");
        }
        const norm = o.gradClip > 0 ? torch.clipGradNorm(this.#params, o.gradClip) : NaN;
        // Checked before the update, which a NaN loss or gradient would spread to every weight.
        const loss = lossValue.item();
        if (!Number.isFinite(loss)) throw this.#diverged(`the loss is ${loss}`, lr);
        if (o.gradClip > 0 && !Number.isFinite(norm)) throw this.#diverged(`the gradient norm is ${norm}`, lr);
        this.optimizer.lr = lr;
        this.optimizer.step();
        this.optimizer.zeroGrad();
        const bad = firstNonFinite(this.#params);
        if (bad >= 0) throw this.#diverged(`the update made ${this.#paramName(bad)} non-finite`, lr);
        this.ema?.step(this.#params);
        return { loss, gradNorm: norm };
      });
      this.step += 1;
      return { step: this.step, loss, lr, gradNorm };
    } catch (err) {
      this.optimizer.zeroGrad(); // a NaN gradient left behind would poison a later step
      throw err;
    }
  }

  /** Trains until `options.steps`, checkpointing, logging and sampling on the way. */
  run(hooks: TrainHooks = {}): void {
    const o = this.options;
    const log = this.logPath;
    const writes = torch.distributed.isMainProcess();
    if (writes) {
      const torn = trimRunLog(log, this.step);
      if (torn) hooks.onEvent?.(torn);
    }
    this.#broadcastState();
    let lastSave = this.clock();
    while (this.step < o.steps) {
      const info = this.trainStep();
      hooks.onStep?.(info);
      this.#lossWindow.push(info.loss);
      if (!writes) continue; // rank 0 alone logs, samples and checkpoints
      if (this.step % o.logEvery === 0 || this.step === o.steps) {
        const loss = this.#lossWindow.reduce((a, b) => a + b, 0) / this.#lossWindow.length;
        appendLogEntry(log, { step: this.step, loss, lr: info.lr, grad_norm: info.gradNorm, time: new Date().toISOString() });
        this.#lossWindow = [];
      }
      if (o.sampleEvery > 0 && (this.step % o.sampleEvery === 0 || this.step === o.steps)) {
        const file = this.writeSampleGrid();
        hooks.onEvent?.(`samples: ${file}`);
      }
      if (o.snapshotEvery > 0 && this.step % o.snapshotEvery === 0) hooks.onSnapshot?.(this.step);
      const timeUp = o.checkpointSeconds > 0 && this.clock() - lastSave >= o.checkpointSeconds * 1000;
      if (this.step % o.checkpointEvery === 0 || this.step === o.steps || timeUp) {
        this.saveCheckpoint();
        lastSave = this.clock();
        hooks.onEvent?.(`checkpoint at step ${this.step}`);
      }
    }
    const bad = firstNonFinite(this.finalWeights());
    if (bad >= 0) throw this.#diverged(`the final weights' ${this.#paramName(bad)} is not finite`, learningRate(o, Math.max(0, this.step - 1)), this.step);
  }

  /** The weights to sample and ship: the EMA's when there is one. */
  finalWeights(): Tensor[] {
    return this.ema ? this.ema.shadow : this.#params;
  }

  /** A grid of samples from the fixed preview noise (DDIM, EMA weights; classes 0..K-1 cycled for a class-conditional model). */
  writeSampleGrid(): string {
    const scheduler = new DDIMScheduler({ ...this.scheduler.config });
    const labels = this.#sampleLabels === undefined ? {} : { classLabels: this.#sampleLabels };
    const samples = withWeights(this.model, this.finalWeights(), () =>
      generate(this.model, scheduler, this.#sampleNoise, { numInferenceSteps: this.options.sampleSteps, ...labels }),
    );
    const file = join(this.outDir, "samples", `${stepName(this.step)}.png`);
    writePng(file, makeGrid(samples));
    samples.dispose();
    scheduler.dispose();
    return file;
  }

  /**
   * Model, EMA and optimizer state in one atomically written file, the counters in its metadata.
   * Refuses non-finite tensors, so the checkpoint on disk stays the last good one.
   */
  saveCheckpoint(): void {
    const tensors = new Map<string, Tensor>();
    const names = Array.from(this.model.namedParameters(), ([n]) => n);
    names.forEach((n, i) => tensors.set(`model.${n}`, this.#params[i]!));
    if (this.ema) names.forEach((n, i) => tensors.set(`ema.${n}`, this.ema!.shadow[i]!));
    for (const [k, t] of this.optimizer.stateDict()) tensors.set(`optimizer.${k}`, t);
    const keys = [...tensors.keys()];
    const bad = firstNonFinite([...tensors.values()]);
    if (bad >= 0) throw this.#diverged(`${keys[bad]} is not finite`, learningRate(this.options, Math.max(0, this.step - 1)), this.step);
    const state: TrainerState = { step: this.step, ema_step: this.ema?.optimizationStep ?? 0, options: this.options, loss_window: this.#lossWindow };
    saveFile(tensors, this.checkpointPath, { trainer_state: JSON.stringify(state) });
    this.#checkpointStep = this.step;
  }

  /**
   * Restores a checkpoint written by saveCheckpoint; the options must match the saved ones.
   * Also checks the run's log, so that a damaged one is refused before training starts.
   */
  loadCheckpoint(): void {
    const file = this.checkpointPath;
    const bytes = readFileSync(file);
    const meta = checkpointState(bytes, file);
    const tensors = load(bytes, file);
    try {
      const saved = meta.options;
      const differing = (Object.keys(this.options) as (keyof TrainOptions)[]).filter(
        (k) => !RESUMABLE_CHANGES.has(k) && JSON.stringify(saved[k]) !== JSON.stringify(this.options[k]),
      );
      if (differing.length > 0)
        throw new Error(`${file} was written with other settings (${differing.map((k) => `${k}: ${JSON.stringify(saved[k])}`).join(", ")}); resume with the same settings or train into a new folder`);
      const keys = [...tensors.keys()];
      const bad = firstNonFinite([...tensors.values()]);
      if (bad >= 0)
        throw new CheckpointError(`${file} holds non-finite weights (${keys[bad]}), from a run that diverged: delete it to restart this run from step 0, or train into a new folder`);
      readRunLog(this.logPath);
      const model = new Map<string, Tensor>();
      const ema: Tensor[] = [];
      const optimizer = new Map<string, Tensor>();
      for (const [k, t] of tensors) {
        if (k.startsWith("model.")) model.set(k.slice(6), t);
        else if (k.startsWith("optimizer.")) optimizer.set(k.slice(10), t);
      }
      try {
        this.model.loadStateDict(model);
        this.optimizer.loadStateDict(optimizer, meta.step);
      } catch (err) {
        throw new CheckpointError(`${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (this.ema) {
        for (const [n] of this.model.namedParameters()) {
          const t = tensors.get(`ema.${n}`);
          if (!t) throw new CheckpointError(`${file} has no EMA weights for ${n}`);
          ema.push(t);
        }
        torch.noGrad(() => this.ema!.shadow.forEach((s, i) => s.copy_(ema[i]!)));
        this.ema.optimizationStep = meta.ema_step;
      }
      this.step = meta.step;
      this.#lossWindow = [...meta.loss_window];
      this.#checkpointStep = meta.step;
    } finally {
      torch.dispose([...tensors.values()]);
    }
  }

  /**
   * DDP's start: every rank takes rank 0's weights, EMA, optimizer moments and counters (a
   * fresh model's, or those of the checkpoint rank 0 resumed from, whatever world size wrote it).
   */
  #broadcastState(): void {
    if (!this.#ddp) return;
    const tensors = [...this.model.stateDict().values(), ...(this.ema?.shadow ?? []), ...this.optimizer.stateDict().values()];
    const counters = torch.tensor([this.step, this.ema?.optimizationStep ?? 0, this.optimizer.stepCount], { dtype: "float64" });
    try {
      torch.distributed.broadcast([...tensors, counters], 0);
      const [step, emaStep, optimizerStep] = counters.toArray() as [number, number, number];
      [this.step, this.optimizer.stepCount] = [step, optimizerStep];
      if (this.ema) this.ema.optimizationStep = emaStep;
    } finally {
      counters.dispose();
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
    this.#sampleNoise.dispose();
  }

  #paramName(index: number): string {
    return Array.from(this.model.namedParameters(), ([n]) => n)[index] ?? `parameter ${index}`;
  }

  /** The error for a run that diverged at `step` (the step being taken, 1-based). */
  #diverged(why: string, lr: number, step = this.step + 1): TrainingDivergedError {
    const kept = this.#checkpointStep === null ? "(no checkpoint was due yet)" : `and ${this.checkpointPath} (step ${this.#checkpointStep}) is kept as the last good state`;
    return new TrainingDivergedError(
      (n) => `training diverged at step ${step}: ${why} (learning rate ${lr.toExponential(2)}); nothing was saved from it ${kept}; train again with a lower ${n("lr")} (${this.options.lr} here)`,
      step,
    );
  }
}

/**
 * For a class-conditional model, the number of classes it is trained on (num_class_embeds, else
 * the dataset's); undefined for an unconditional one. Refuses data without labels, and labels
 * the model cannot take, before any step.
 */
function trainingClasses(model: UNet2DModel, dataset: ImageDataset): number | undefined {
  const c = model.config;
  if (!isClassConditional(c)) return undefined;
  const name = dataset.name ?? "the dataset";
  if (dataset.labels === undefined)
    throw new ClassLabelError(
      `train: the model is class-conditional (${conditioningName(c)}) and needs class labels, but ${name} has none; ` +
        `train it on labelled data: fashion-mnist, cifar10:<dir>, or folder:<dir> with one subfolder per class`,
    );
  checkClassLabels(c, dataset.labels, `train: ${name}`);
  if (c.class_embed_type == null && c.num_class_embeds != null) return c.num_class_embeds;
  return dataset.classes?.length ?? dataset.labels.reduce((max, l) => Math.max(max, l), 0) + 1;
}

interface DataParallel {
  rank: number;
  /** Images per rank of each global batch. */
  shard: number;
}

/**
 * This process's share of a global batch of `batchSize` when a torch.distributed group is
 * initialized (DistributedSampler's equal shards), else null.
 */
function dataParallel(batchSize: number): DataParallel | null {
  const dist = torch.distributed;
  if (!dist.inGroup()) return null;
  const worldSize = dist.getWorldSize();
  if (batchSize % worldSize !== 0)
    throw new OptionError(
      (n) => `the batch size ${batchSize} is not divisible by the ${worldSize} processes: ${n("batchSize")} is the global batch, split equally among them; give a multiple of ${worldSize}`,
    );
  return { rank: dist.getRank(), shard: batchSize / worldSize };
}

/** The index of the first tensor holding a NaN or an infinity, or -1; one sync for the lot. */
function firstNonFinite(tensors: readonly Tensor[]): number {
  if (tensors.length === 0) return -1;
  return torch.noGrad(() =>
    torch.tidy(() => {
      // Summed in float64, which no float32 values overflow: finite exactly when every element is.
      const sums = torch.stack(tensors.map((t) => t.sum(undefined, false, "float64")));
      if (Number.isFinite(sums.sum().item())) return -1;
      return sums.toArray().findIndex((x) => !Number.isFinite(x));
    }),
  );
}

