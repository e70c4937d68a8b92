// `diffprune prune`: prune a UNet with one of the paper's criteria and write a loadable model
// folder (config.json, weights, scheduler config) and pruning.json (what changed, and for
// Diff-Pruning the loss per timestep and T').
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import * as torch from "../torch/index.js";
import { writeJsonAtomic } from "../io/index.js";
import {
  CRITERIA,
  IMPORTANCE_VARIANTS,
  checkCriterion,
  checkImportanceVariant,
  drawCalibration,
  loadCalibration,
  needsGradients,
  pruneUNet,
  type Calibration,
  type ImportanceVariant,
  type UNetPruneReport,
} from "../pruning/index.js";
import { fraction, nonNegativeInt, positiveInt } from "./args.js";
import { formatCount } from "./count.js";
import { loadModelSource, type ModelSourceArgs } from "./model-source.js";
import { Progress } from "./progress.js";

export interface PruneArgs extends ModelSourceArgs {
  method: string;
  ratio: number;
  thr: number;
  data?: string;
  calibration?: string;
  calibBatch: number;
  global?: boolean;
  roundTo?: number;
  maxRatio: number;
  ignore?: string;
  iterativeSteps: number;
  pruneHeads?: boolean;
  importance?: string;
  out: string;
  json?: boolean;
}

export const PRUNING_FILE = "pruning.json";

export interface PruningRecord {
  method: string;
  importance: ImportanceVariant;
  ratio: number;
  global: boolean;
  round_to: number | null;
  max_ratio: number;
  iterative_steps: number;
  prune_heads: boolean;
  ignored: string[];
  seed: number;
  source: string;
  calibration: { source: string; batch: number } | null;
  params: { before: number; after: number };
  macs: { before: number; after: number };
  layers: UNetPruneReport["layers"];
  kept_whole: UNetPruneReport["kept"];
  /** Groups in the order they were pruned, with the root's channels each removed (Torch-Pruning's pruning history). */
  history: UNetPruneReport["history"];
  diff_pruning: { thr: number | null; losses: number[]; t_prime: number; timesteps: number } | null;
  seconds: number;
}

function calibrationFor(args: PruneArgs, config: Parameters<typeof drawCalibration>[1]): { calibration: Calibration; source: string } | null {
  if (args.calibration && args.data) throw new Error("give either --data SPEC or --calibration FILE, not both");
  if (args.calibration) return { calibration: loadCalibration(args.calibration, config), source: args.calibration };
  if (args.data) return { calibration: drawCalibration(args.data, config, args.calibBatch, args.seed), source: args.data };
  return null;
}

export function pruneAction(args: PruneArgs): PruningRecord {
  const criterion = checkCriterion(args.method);
  const start = Date.now();
  const { model, scheduler } = loadModelSource(args);
  const calib = needsGradients(criterion) ? calibrationFor(args, model.config) : null;
  if (needsGradients(criterion) && !calib)
    throw new Error(`--method ${criterion} scores channels by gradients of the denoising loss: give --data SPEC (e.g. fashion-mnist) or --calibration FILE`);
  const ignored = args.ignore ? args.ignore.split(",").map((s) => s.trim()).filter(Boolean) : [];
  const progress = new Progress(criterion === "diff-pruning" ? "gradients (t until loss < thr * max)" : "gradients (every t)", scheduler.numTrainTimesteps, 0, "t");
  torch.manualSeed(args.seed);
  let report: UNetPruneReport;
  try {
    report = pruneUNet(model, {
      criterion,
      ratio: args.ratio,
      scheduler,
      calibration: calib?.calibration ?? null,
      thr: args.thr,
      global: args.global ?? false,
      roundTo: args.roundTo ?? null,
      maxRatio: args.maxRatio,
      ignoredLayers: ignored,
      iterativeSteps: args.iterativeSteps,
      pruneHeads: args.pruneHeads ?? false,
      importance: checkImportanceVariant(args.importance ?? "diffusers"),
      onGradientStep: (t, loss) => progress.update(t + 1, `loss ${loss.toFixed(4)}`),
    });
    mkdirSync(args.out, { recursive: true });
    model.savePretrained(args.out);
    writeJsonAtomic(join(args.out, "scheduler_config.json"), scheduler.toJSON());
  } finally {
    model.dispose();
    calib?.calibration.images.dispose();
    calib?.calibration.noise.dispose();
  }
  const g = report.gradients;
  const record: PruningRecord = {
    method: criterion,
    importance: report.importance,
    ratio: args.ratio,
    global: report.global,
    round_to: args.roundTo ?? null,
    max_ratio: args.maxRatio,
    iterative_steps: args.iterativeSteps,
    prune_heads: args.pruneHeads ?? false,
    ignored,
    seed: args.seed,
    source: args.model ?? args.config!,
    calibration: calib ? { source: calib.source, batch: calib.calibration.images.shape[0] ?? 0 } : null,
    params: { before: report.before.params, after: report.after.params },
    macs: { before: report.before.macs, after: report.after.macs },
    layers: report.layers,
    kept_whole: report.kept,
    history: report.history,
    diff_pruning: g ? { thr: g.thr, losses: g.losses, t_prime: g.tPrime, timesteps: g.timesteps } : null,
    seconds: (Date.now() - start) / 1000,
  };
  if (g && g.losses.length < progress.total) {
    progress.total = g.losses.length;
    progress.update(g.losses.length, `stopped after t = ${g.tPrime}: loss below ${g.thr} x max`);
  }
  writeJsonAtomic(join(args.out, PRUNING_FILE), record);
  return record;
}

function summary(r: PruningRecord): string {
  const lines = [
    `${r.method} pruning at ratio ${r.ratio}${r.global ? " (global)" : ""}`,
    `params ${formatCount(r.params.before, "M")} -> ${formatCount(r.params.after, "M")}  MACs ${formatCount(r.macs.before, "G")} -> ${formatCount(r.macs.after, "G")}`,
  ];
  if (r.diff_pruning) lines.push(`gradients over t = 0..${r.diff_pruning.t_prime} of ${r.diff_pruning.timesteps} timesteps${r.diff_pruning.thr === null ? "" : ` (thr ${r.diff_pruning.thr})`}`);
  return lines.join("\n");
}

export function registerPrune(program: Command): void {
  program
    .command("prune")
    .description("prune a UNet's channels structurally (Diff-Pruning and the paper's baselines) and save the smaller model")
    .option("--model <dir>", "a diffusers model or pipeline folder")
    .option("--config <file>", "a UNet2DModel config.json instead of a checkpoint (weights drawn at random)")
    .requiredOption("--method <name>", `importance criterion: ${CRITERIA.join(", ")}`)
    .requiredOption("--ratio <r>", "fraction of each group's channels to remove, in [0, 1)", fraction())
    .option("--thr <x>", "diff-pruning: stop accumulating after the first t with loss < thr * max loss", fraction(), 0.05)
    .option("--data <spec>", "calibration images for taylor/diff-pruning: fashion-mnist, folder:<path>, cifar10:<dir>, ...")
    .option("--calibration <file>", "calibration batch as safetensors (images in [-1, 1] and noise, same shape)")
    .option("--calib-batch <n>", "calibration images drawn from --data", positiveInt, 32)
    .option("--seed <n>", "seed of the calibration draw, the noise, random scores and --config weights", nonNegativeInt, 0)
    .option("--global", "rank channels across all groups instead of within each group")
    .option("--round-to <n>", "keep channel counts at multiples of n", positiveInt)
    .option("--max-ratio <r>", "no group loses more than this fraction", fraction(true), 1)
    .option("--ignore <names>", "comma-separated module paths whose output channels stay (the output conv always stays)")
    .option("--iterative-steps <n>", "prune in n steps of growing ratio", positiveInt, 1)
    .option("--prune-heads", "multi-head attention loses whole heads instead of channels in every head")
    .option(
      "--importance <variant>",
      `taylor/diff-pruning scores: ${IMPORTANCE_VARIANTS.join(" or ")} (diffusers: ddpm_prune.py, the default; ddpm-exp: the DDPM-codebase variant behind the paper's CIFAR-10/CelebA tables)`,
      "diffusers",
    )
    .requiredOption("--out <dir>", "folder for the pruned model and pruning.json")
    .option("--json", "print pruning.json's summary as JSON")
    .action((args: PruneArgs) => {
      const r = pruneAction(args);
      if (args.json) console.log(JSON.stringify({ method: r.method, ratio: r.ratio, params: r.params, macs: r.macs, t_prime: r.diff_pruning?.t_prime ?? null, out: args.out }));
      else console.log(summary(r));
    });
}
