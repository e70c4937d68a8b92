// `diffprune train` / `diffprune finetune`: train a new model from a config, or continue a model
// folder (a pruned one, typically; a latent pipeline trains its UNet on cached latents), into a
// run folder that can be resumed.
import type { Command } from "commander";
import { TRAIN_DEFAULTS } from "../diffusion/index.js";
import { finetune } from "../workflow/index.js";
import { addOptimizationOptions, fraction, nonNegativeInt, nonNegativeNumber, positiveInt, optimizationOf, type OptimizationArgs } from "./args.js";
import { addLaunchOptions, runLaunched, type LaunchArgs } from "./launch.js";
import { isMainProcess } from "../workflow/distributed.js";
import { Progress } from "./progress.js";

interface TrainArgs extends OptimizationArgs {
  config?: string;
  model?: string;
  autoencoder?: string;
  data: string;
  out: string;
  ema: boolean;
  dropout?: number;
  flip: boolean;
  gradClip: number;
  seed: number;
  checkpointEvery: number;
  checkpointSeconds: number;
  sampleEvery: number;
  snapshotEvery: number;
  resume: boolean;
  json?: boolean;
}

/** What train_config.json records of the command line: how the run was launched is not part of it. */
function recorded(args: TrainArgs & Partial<LaunchArgs>): Record<string, unknown> {
  const { json, nprocPerNode, nnodes, nodeRank, masterAddr, masterPort, distTimeout, distBackend, ...rest } = args;
  return rest;
}

export function trainAction(args: TrainArgs): void {
  // rank 0 alone reports; the others train quietly (their errors still reach stderr)
  const main = isMainProcess();
  let progress: Progress | null = null;
  let encoding: Progress | null = null;
  const result = finetune({
    model: args.model,
    config: args.config,
    autoencoder: args.autoencoder,
    seed: args.seed,
    data: args.data,
    out: args.out,
    dropout: args.dropout,
    resume: args.resume,
    record: recorded(args),
    train: {
      ...optimizationOf(args),
      ema: args.ema,
      flip: args.flip,
      gradClip: args.gradClip,
      seed: args.seed,
      checkpointEvery: args.checkpointEvery,
      checkpointSeconds: args.checkpointSeconds,
      sampleEvery: args.sampleEvery,
      snapshotEvery: args.snapshotEvery,
    },
    onResume: (step) => main && console.error(`resuming ${args.out} at step ${step}`),
    onStep: (info, total) => {
      if (!main) return;
      progress ??= new Progress("train", total, info.step - 1, "it");
      progress.update(info.step, `loss ${info.loss.toFixed(4)} lr ${info.lr.toExponential(2)}`);
    },
    onEvent: (message) => main && (progress ? progress.note(message) : console.error(message)),
    onEncode: (done, total) => {
      if (!main) return;
      encoding ??= new Progress("encode latents", total, 0, "img");
      encoding.update(done);
    },
  });
  if (!main) return;
  if (args.json) console.log(JSON.stringify({ out: args.out, model: result.modelDir, steps: result.steps, weights: result.ema ? "ema" : "final" }));
  else console.log(`trained ${result.steps} steps; model (${result.ema ? "EMA weights" : "final weights"}) in ${result.modelDir}`);
}

export function registerTrain(program: Command): void {
  for (const name of ["train", "finetune"]) {
    const base = program
      .command(name)
      .description(name === "train" ? "train a diffusion UNet (new from --config, or continuing --model)" : "fine-tune a model folder (e.g. a pruned model)")
      .requiredOption("--data <spec>", "dataset: fashion-mnist, fashion-mnist:test, folder:<path>, cifar10:<dir>")
      .requiredOption("--out <dir>", "run folder (checkpoint, log, samples, model/)");
    const cmd = addOptimizationOptions(base, TRAIN_DEFAULTS, "images per step (the global batch: with several processes, each takes an equal share)")
      .option("--no-ema", "ship the last weights instead of their exponential moving average")
      .option("--dropout <p>", "override the resnets' dropout", fraction())
      .option("--flip", "random horizontal flips", false)
      .option("--grad-clip <x>", "max gradient norm (0: off)", nonNegativeNumber, TRAIN_DEFAULTS.gradClip)
      .option("--seed <n>", "random seed", nonNegativeInt, TRAIN_DEFAULTS.seed)
      .option("--checkpoint-every <n>", "steps between checkpoints", positiveInt, TRAIN_DEFAULTS.checkpointEvery)
      .option("--checkpoint-seconds <s>", "also checkpoint once this many seconds of training passed since the last one (0: off)", nonNegativeNumber, TRAIN_DEFAULTS.checkpointSeconds)
      .option("--sample-every <n>", "steps between sample grids (0: off)", nonNegativeInt, 0)
      .option("--snapshot-every <n>", "steps between model folders of the shipped (EMA) weights in snapshots/step-N, e.g. to evaluate FID over training (0: off)", nonNegativeInt, 0)
      .option("--resume", "continue the run in --out from its checkpoint", false)
      .option("--json", 'print {"out", "model", "steps", "weights"} as JSON when done');
    if (name === "train")
      cmd
        .option("--config <file>", "UNet2DModel config.json for a new model")
        .option("--autoencoder <dir>", "with --config: a latent pipeline, the new UNet trained on this autoencoder's latents (see train-autoencoder)")
        .option("--model <dir>", "start from this model folder");
    else cmd.requiredOption("--model <dir>", "the model folder to fine-tune (a latent pipeline: its UNet, on the data's latents, cached in $DIFFPRUNE_CACHE)");
    addLaunchOptions(cmd);
    cmd.action((args: TrainArgs & LaunchArgs) => runLaunched(args, () => trainAction(args)));
  }
}
