// Training a model folder into a run folder, as ddpm_train.py fine-tunes a pruned model: the
// run checkpoints as it goes and resumes from its checkpoint; when done, its model/ folder holds
// the final (EMA) weights and the scheduler, loadable like any model folder. A latent pipeline's
// UNet trains on its autoencoder's latents of the data (encoded once, cached), and model/ is a
// pipeline folder again, the autoencoder copied unchanged. In a torch.distributed group every
// rank trains its shard of each batch and rank 0 alone writes the run folder.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { OptionError, writeJsonAtomic } from "../io/index.js";
import { checkOutputs, makeDirs, writeFolderAtomic } from "../io/paths.js";
import { Dropout } from "../nn/index.js";
import { datasetPath, openDataset, type ImageDataset } from "../data/index.js";
import {
  CHECKPOINT_NAME,
  disposePipeline,
  imageShape,
  loadPipeline,
  savePipeline,
  stepName,
  Trainer,
  withWeights,
  type ModelSource,
  type Pipeline,
  type StepInfo,
  type TrainOptions,
} from "../diffusion/index.js";
import { latentDataset, LatentTrainer } from "./latent-data.js";
import { isMainProcess } from "./distributed.js";

/**
 * The fine-tuning recipe of the paper's ddpm_train.py: Adam (0.9, 0.999) without weight decay,
 * lr constant from the first step (no warm-up), gradient clip 1, EMA up to 0.9999. Where it
 * differs: the EMA warms up as 1 - (1 + s/9)^-1 = s / (9 + s) (our EMA's inv_gamma/power form),
 * which is the reference's (1 + s) / (10 + s) one step later; no random flips, as the base model
 * was trained (ddpm_train.py flips CIFAR-10); dropout stays what the model's config says.
 */
export function recipe(o: { batchSize: number; lr: number }, seed: number, steps: number): Partial<TrainOptions> {
  return {
    steps,
    batchSize: o.batchSize,
    lr: o.lr,
    warmupSteps: 0,
    lrSchedule: "constant",
    adamBetas: [0.9, 0.999],
    weightDecay: 0,
    gradClip: 1,
    ema: true,
    emaMaxDecay: 0.9999,
    emaInvGamma: 9,
    emaPower: 1,
    flip: false,
    seed,
    checkpointEvery: Math.max(10, Math.floor(steps / 20)),
    sampleEvery: 0,
  };
}

export interface FinetuneOptions extends ModelSource {
  /** Training data (a dataset spec). */
  data: string;
  /** The run folder: checkpoint, log.jsonl, train_config.json, samples/, and model/ when done. */
  out: string;
  /** Trainer options; the rest are TRAIN_DEFAULTS. */
  train?: Partial<TrainOptions>;
  /** Overrides the resnets' dropout. */
  dropout?: number | undefined;
  /** Continue the run in `out` from its checkpoint (refused otherwise when there is one). */
  resume?: boolean;
  /** What train_config.json records besides the trainer's options (e.g. the command's arguments). */
  record?: Record<string, unknown>;
  onResume?: (step: number) => void;
  onStep?: (info: StepInfo, total: number) => void;
  onEvent?: (message: string) => void;
  /** A latent pipeline's data being encoded (once; later runs read the cache): images done, of all. */
  onEncode?: (done: number, total: number) => void;
}

export interface FinetuneResult {
  /** The model folder written. */
  modelDir: string;
  steps: number;
  /** Whether model/ holds the EMA weights (else the last ones). */
  ema: boolean;
}

export const RUN_CONFIG = "train_config.json";

/** What a run folder holds; an existing one must be a run (to continue or restart) or empty. */
const RUN_FILES = new Set([RUN_CONFIG, CHECKPOINT_NAME, "log.jsonl", "samples", "model"]);

function runFolderReuse(names: string[]): string | null {
  // A run's record or checkpoint marks it, whatever else the trainer keeps there.
  if (names.includes(RUN_CONFIG) || names.includes(CHECKPOINT_NAME) || names.every((n) => RUN_FILES.has(n))) return null;
  const other = names.filter((n) => !RUN_FILES.has(n));
  return `the folder is not empty and is not a training run (it holds ${other.slice(0, 3).join(", ")}${other.length > 3 ? ", ..." : ""}); choose a new or empty folder`;
}

/** The model folder of a finished run in `out`. */
export const runModelDir = (out: string): string => join(out, "model");

/** Trains (or continues training) the model of `o` on `o.data` in the run folder `o.out`. */
export function finetune(o: FinetuneOptions): FinetuneResult {
  checkOutputs(
    [{ flag: "out", path: o.out, kind: "folder", inPlace: true, reuse: runFolderReuse }],
    [
      { flag: "model", path: o.model },
      { flag: "config", path: o.config },
      { flag: "autoencoder", path: o.autoencoder },
      { flag: "data", path: datasetPath(o.data) },
    ],
  );
  const checkpoint = join(o.out, CHECKPOINT_NAME);
  if (existsSync(checkpoint) && !o.resume)
    throw new OptionError((n) => `${o.out} already holds a training run: use ${n("resume")} to continue it, or choose another ${n("out")}`);
  const pipeline = loadPipeline(o, { latent: true });
  const { model, scheduler, autoencoder } = pipeline;
  if (o.dropout !== undefined) for (const [, m] of model.namedModules()) if (m instanceof Dropout) m.p = o.dropout;
  const c = model.config;
  let data: TrainingData;
  try {
    data = trainingData(o, pipeline);
  } catch (err) {
    disposePipeline(pipeline);
    throw err;
  }
  const { dataset, latentCache } = data;
  const disposeAll = () => {
    disposePipeline(pipeline);
    data.dispose();
  };
  let trainer: Trainer;
  const writes = isMainProcess();
  // A run that fails before its first step leaves no folder behind (one that trained is resumable).
  const created = writes ? makeDirs(o.out) : [];
  try {
    trainer = autoencoder ? new LatentTrainer(model, autoencoder, scheduler, dataset, o.out, o.train ?? {}) : new Trainer(model, scheduler, dataset, o.out, o.train ?? {});
    if (o.resume && existsSync(checkpoint)) {
      trainer.loadCheckpoint();
      o.onResume?.(trainer.step);
    }
    const latent = autoencoder && pipeline.autoencoderSource ? { autoencoder: { class_name: autoencoder.config._class_name, folder: pipeline.autoencoderSource.folder }, latent_cache: latentCache } : {};
    const world = torch.distributed.isInitialized() ? { world_size: torch.distributed.getWorldSize() } : {};
    if (writes) writeJsonAtomic(join(o.out, RUN_CONFIG), { ...o.record, ...trainer.options, model_config: c, params: model.numParameters(), ...latent, ...world });
  } catch (err) {
    if (created.length > 0) rmSync(created[0]!, { recursive: true, force: true });
    disposeAll();
    throw err;
  }
  try {
    const total = trainer.options.steps;
    // model/ at the end, and snapshots/step-N on the way: the pipeline with the shipped weights
    const writeModel = (folder: string) => writeFolderAtomic(folder, (dir) => savePipeline(dir, pipeline, (unetDir) => withWeights(model, trainer.finalWeights(), () => model.savePretrained(unetDir))));
    trainer.run({
      ...(o.onStep ? { onStep: (info: StepInfo) => o.onStep!(info, total) } : {}),
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      onSnapshot: (step) => {
        const folder = snapshotDir(o.out, step);
        writeModel(folder);
        o.onEvent?.(`snapshot: ${folder}`);
      },
    });
    const modelDir = runModelDir(o.out);
    if (writes) writeModel(modelDir);
    // every rank returns once model/ is written (a rank 0 that failed there fails them too)
    if (torch.distributed.isInitialized()) torch.distributed.barrier();
    return { modelDir, steps: trainer.step, ema: trainer.options.ema };
  } finally {
    trainer.dispose();
    disposeAll();
  }
}

/** Where a run keeps the model of step `step` (--snapshot-every). */
export const snapshotDir = (out: string, step: number): string => join(out, "snapshots", stepName(step));

interface TrainingData {
  dataset: ImageDataset;
  /** The latents' cache file (a latent pipeline), else null. */
  latentCache: string | null;
  dispose(): void;
}

/**
 * What the UNet trains on: the images of `o.data`, or for a latent pipeline their latents (the
 * autoencoder's images encoded once and cached, see latent-data.ts). Random flips mirror images,
 * not latents (a flipped image's latents are not its latents flipped), so they are refused there.
 */
function trainingData(o: FinetuneOptions, p: Pipeline): TrainingData {
  const shape = imageShape(p.model, p.autoencoder);
  if (p.autoencoder && o.train?.flip)
    throw new OptionError(
      (n) => `${n("flip")} mirrors training images, but a latent pipeline trains on latents encoded once from unflipped images (a flipped image's latents are not its latents mirrored); train without ${n("flip")}`,
    );
  const images = openDataset(o.data, { sampleSize: shape.size, channels: shape.channels });
  if (!p.autoencoder) return { dataset: images, latentCache: null, dispose: () => undefined };
  const { dataset, file, cached } = latentDataset(p.autoencoder, images, { spec: o.data, ...(o.onEncode ? { onProgress: o.onEncode } : {}) });
  o.onEvent?.(cached ? `latents of ${o.data} read from ${file}` : `latents of ${o.data} encoded by the pipeline's ${p.autoencoderSource?.folder ?? "autoencoder"} and cached in ${file}`);
  return { dataset, latentCache: file, dispose: () => dataset.dispose() };
}
