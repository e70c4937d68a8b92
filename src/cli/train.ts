// `diffprune train` / `diffprune finetune`: train a new model from a config, or continue a model
// folder (a pruned one, typically), into a run folder that can be resumed.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { writeJsonAtomic } from "../io/index.js";
import { checkOutputs, makeDirs, writeFolderAtomic } from "../io/paths.js";
import { Dropout } from "../nn/index.js";
import { openDataset } from "../data/index.js";
import { CHECKPOINT_NAME, Trainer, TRAIN_DEFAULTS, withWeights, type TrainOptions } from "../diffusion/index.js";
import { datasetPath, fraction, learningRate, nonNegativeInt, nonNegativeNumber, oneOf, positiveInt } from "./args.js";
import { loadModelSource } from "./model-source.js";
import { Progress } from "./progress.js";

interface TrainArgs {
  config?: string;
  model?: string;
  data: string;
  out: string;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  lrSchedule: "constant" | "cosine";
  ema: boolean;
  dropout?: number;
  flip: boolean;
  gradClip: number;
  seed: number;
  checkpointEvery: number;
  checkpointSeconds?: number;
  sampleEvery: number;
  resume: boolean;
}

/** The model to train: new from a config, or a model folder's weights; and its scheduler. */

/** What a run folder holds; an existing --out must be one (to continue or restart) or empty. */
const RUN_FILES = new Set(["train_config.json", CHECKPOINT_NAME, "log.jsonl", "samples", "model"]);

function runFolderReuse(names: string[]): string | null {
  // A run's record or checkpoint marks it, whatever else the trainer keeps there.
  if (names.includes("train_config.json") || names.includes(CHECKPOINT_NAME) || names.every((n) => RUN_FILES.has(n))) return null;
  const other = names.filter((n) => !RUN_FILES.has(n));
  return `the folder is not empty and is not a training run (it holds ${other.slice(0, 3).join(", ")}${other.length > 3 ? ", ..." : ""}); choose a new or empty folder`;
}

export function trainAction(args: TrainArgs): void {
  checkOutputs(
    [{ flag: "--out", path: args.out, kind: "folder", inPlace: true, reuse: runFolderReuse }],
    [
      { flag: "--model", path: args.model },
      { flag: "--config", path: args.config },
      { flag: "--data", path: datasetPath(args.data) },
    ],
  );
  const checkpoint = join(args.out, CHECKPOINT_NAME);
  if (existsSync(checkpoint) && !args.resume)
    throw new Error(`${args.out} already holds a training run: add --resume to continue it, or choose another --out`);
  const { model, scheduler } = loadModelSource(args);
  if (args.dropout !== undefined) for (const [, m] of model.namedModules()) if (m instanceof Dropout) m.p = args.dropout;
  const c = model.config;
  const dataset = openDataset(args.data, { sampleSize: c.sample_size, channels: c.in_channels });
  const options: Partial<TrainOptions> = {
    steps: args.steps,
    batchSize: args.batchSize,
    lr: args.lr,
    warmupSteps: args.warmup,
    lrSchedule: args.lrSchedule,
    ema: args.ema,
    flip: args.flip,
    gradClip: args.gradClip,
    seed: args.seed,
    checkpointEvery: args.checkpointEvery,
    ...(args.checkpointSeconds !== undefined ? { checkpointSeconds: args.checkpointSeconds } : {}),
    sampleEvery: args.sampleEvery,
  };
  // A run that fails before its first step leaves no folder behind (one that trained is resumable).
  const created = makeDirs(args.out);
  let trainer: Trainer;
  try {
    trainer = new Trainer(model, scheduler, dataset, args.out, options);
    if (args.resume && existsSync(checkpoint)) {
      trainer.loadCheckpoint();
      console.error(`resuming ${args.out} at step ${trainer.step}`);
    }
    writeJsonAtomic(join(args.out, "train_config.json"), { ...args, ...trainer.options, model_config: c, params: model.numParameters() });
  } catch (err) {
    if (created.length > 0) rmSync(created[0]!, { recursive: true, force: true });
    throw err;
  }
  const progress = new Progress("train", trainer.options.steps, trainer.step, "it");
  trainer.run({
    onStep: (info) => progress.update(info.step, `loss ${info.loss.toFixed(4)} lr ${info.lr.toExponential(2)}`),
    onEvent: (message) => progress.note(message),
  });
  const modelDir = join(args.out, "model");
  writeFolderAtomic(modelDir, (dir) => {
    withWeights(model, trainer.finalWeights(), () => model.savePretrained(dir));
    writeJsonAtomic(join(dir, "scheduler_config.json"), scheduler.toJSON());
  });
  console.log(`trained ${trainer.step} steps; model (${args.ema ? "EMA weights" : "final weights"}) in ${modelDir}`);
  trainer.dispose();
}

export function registerTrain(program: Command): void {
  for (const name of ["train", "finetune"]) {
    const cmd = program
      .command(name)
      .description(name === "train" ? "train a diffusion UNet (new from --config, or continuing --model)" : "fine-tune a model folder (e.g. a pruned model)")
      .requiredOption("--data <spec>", "dataset: fashion-mnist, fashion-mnist:test, folder:<path>, cifar10:<dir>")
      .requiredOption("--out <dir>", "run folder (checkpoint, log, samples, model/)")
      .option("--steps <n>", "optimisation steps", positiveInt, TRAIN_DEFAULTS.steps)
      .option("--batch-size <n>", "images per step", positiveInt, TRAIN_DEFAULTS.batchSize)
      .option("--lr <x>", "peak learning rate, in (0, 1]", learningRate(), TRAIN_DEFAULTS.lr)
      .option("--warmup <n>", "linear warm-up steps", nonNegativeInt, TRAIN_DEFAULTS.warmupSteps)
      .option("--lr-schedule <s>", "after warm-up: constant or cosine", oneOf("constant", "cosine"), TRAIN_DEFAULTS.lrSchedule)
      .option("--no-ema", "ship the last weights instead of their exponential moving average")
      .option("--dropout <p>", "override the resnets' dropout", fraction())
      .option("--flip", "random horizontal flips", false)
      .option("--grad-clip <x>", "max gradient norm (0: off)", nonNegativeNumber, TRAIN_DEFAULTS.gradClip)
      .option("--seed <n>", "random seed", nonNegativeInt, TRAIN_DEFAULTS.seed)
      .option("--checkpoint-every <n>", "steps between checkpoints", positiveInt, TRAIN_DEFAULTS.checkpointEvery)
      .option("--checkpoint-seconds <s>", "also checkpoint once this many seconds of training passed since the last one (0: off)", nonNegativeNumber, TRAIN_DEFAULTS.checkpointSeconds)
      .option("--sample-every <n>", "steps between sample grids (0: off)", nonNegativeInt, 0)
      .option("--resume", "continue the run in --out from its checkpoint", false);
    if (name === "train") cmd.option("--config <file>", "UNet2DModel config.json for a new model").option("--model <dir>", "start from this model folder");
    else cmd.requiredOption("--model <dir>", "the model folder to fine-tune");
    cmd.action((args: TrainArgs) => trainAction(args));
  }
}
