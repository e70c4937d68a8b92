// `diffprune prune`: prune a UNet with one of the paper's criteria and write a loadable model
// folder (config.json, weights, scheduler config) and pruning.json (what changed, and for
// Diff-Pruning the loss per timestep and T').
import { join } from "node:path";
import type { Command } from "commander";
import * as torch from "../torch/index.js";
import { writeJsonAtomic } from "../io/index.js";
import { checkInputFiles, checkOutputs, onlyHolds, writeFolderAtomic } from "../io/paths.js";
import { CONFIG_NAME, WEIGHTS_NAME, type UNet2DModel } from "../models/index.js";
import {
  CRITERIA,
  IMPORTANCE_VARIANTS,
  DependencyGraph,
  channelsRemoved,
  checkCriterion,
  checkImportanceVariant,
  drawCalibration,
  loadCalibration,
  needsGradients,
  pruneUNet,
  pruningGroups,
  unetForward,
  type Calibration,
  type ImportanceVariant,
  type UNetPruneReport,
} from "../pruning/index.js";
import { datasetPath, fraction, nonNegativeInt, positiveFraction, positiveInt } from "./args.js";
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
  /** Write the model even when the options remove no channel (otherwise refused). */
  allowUnchanged?: boolean;
}

export const PRUNING_FILE = "pruning.json";
const SCHEDULER_FILE = "scheduler_config.json";

/** What an earlier prune wrote; a folder holding only these (or nothing) may be replaced. */
const PRUNE_OUTPUT = new Set([CONFIG_NAME, WEIGHTS_NAME, SCHEDULER_FILE, PRUNING_FILE]);

/** An existing --out is replaced only when it is an earlier prune's output (or empty). */
export function pruneOutputReuse(names: string[]): string | null {
  if (names.length > 0 && !names.includes(PRUNING_FILE) && names.every((n) => PRUNE_OUTPUT.has(n)))
    return `the folder holds a model without ${PRUNING_FILE}, not one that prune wrote; choose a new or empty folder (it is replaced as a whole)`;
  return onlyHolds("a pruned model", (n) => PRUNE_OUTPUT.has(n))(names);
}

/** The read and written paths of a prune, checked before the model is loaded. */
export function checkPrunePaths(args: Pick<PruneArgs, "model" | "config" | "calibration" | "data" | "out">): void {
  checkOutputs(
    [{ flag: "--out", path: args.out, kind: "folder", reuse: pruneOutputReuse }],
    [
      { flag: "--model", path: args.model },
      { flag: "--config", path: args.config },
      { flag: "--calibration", path: args.calibration },
      { flag: "--data", path: datasetPath(args.data) },
    ],
  );
  checkInputFiles([
    { flag: "--config", path: args.config },
    { flag: "--calibration", path: args.calibration },
  ]);
}

/**
 * Refuses options that would prune nothing, before the gradients are computed: ratio 0, or a
 * --round-to larger than every group. Returns warnings (groups --round-to leaves whole).
 */
export function checkWouldPrune(model: UNet2DModel, args: Pick<PruneArgs, "ratio" | "roundTo" | "maxRatio" | "pruneHeads" | "global" | "allowUnchanged">, ignored: string[]): string[] {
  const ratio = Math.min(args.ratio, args.maxRatio);
  if (ratio === 0) return refuseOrWarn(`--ratio 0 prunes nothing: give a ratio above 0; or add --allow-unchanged to write the model as it is`, args);
  const groups = [...pruningGroups(DependencyGraph.build(model, unetForward(model)), ignored)].filter((g) => g.blocked === null && g.channels > 1);
  const accept = "; or add --allow-unchanged to write the model as it is";
  if (groups.length === 0) return refuseOrWarn(`no group of channels can be pruned (every one is ignored or tied to the output)${accept}`, args);
  const roundTo = args.roundTo ?? null;
  const largest = Math.max(...groups.map((g) => g.channels));
  if (roundTo !== null && roundTo >= largest)
    return refuseOrWarn(`--round-to ${roundTo} is not below any group's channel count (the largest has ${largest}), so nothing would be pruned: use a smaller --round-to${accept}`, args);
  if (args.global) return [];
  const taken = groups.map((g) => channelsRemoved(g, ratio, { roundTo, pruneHeads: args.pruneHeads ?? false }));
  if (taken.every((n) => n === 0))
    return refuseOrWarn(`--ratio ${args.ratio}${roundTo ? ` with --round-to ${roundTo}` : ""} removes no channel from any group (each keeps at least one channel${roundTo ? " and a multiple of --round-to" : ""}): raise --ratio${roundTo ? " or lower --round-to" : ""}${accept}`, args);
  const whole = roundTo === null ? [] : [...new Set(groups.filter((g) => g.channels <= roundTo).map((g) => g.channels))];
  return whole.length > 0 ? [`warning: --round-to ${roundTo} leaves groups of ${whole.sort((a, b) => a - b).join(", ")} channels whole`] : [];
}

function refuseOrWarn(message: string, args: Pick<PruneArgs, "allowUnchanged">): string[] {
  if (!args.allowUnchanged) throw new Error(message);
  return [`warning: ${message.replace(/; or add --allow-unchanged.*$/, "")}; writing it anyway (--allow-unchanged)`];
}

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
  const importance = checkImportanceVariant(args.importance ?? "diffusers");
  const start = Date.now();
  checkPrunePaths(args);
  const ignored = args.ignore ? args.ignore.split(",").map((s) => s.trim()).filter(Boolean) : [];
  const { model, scheduler } = loadModelSource(args);
  let calib: ReturnType<typeof calibrationFor> = null;
  try {
    const warnings = checkWouldPrune(model, args, ignored);
    for (const w of warnings) console.error(w);
    calib = needsGradients(criterion) ? calibrationFor(args, model.config) : null;
    if (needsGradients(criterion) && !calib)
      throw new Error(`--method ${criterion} scores channels by gradients of the denoising loss: give --data SPEC (e.g. fashion-mnist) or --calibration FILE`);
    const progress = new Progress(criterion === "diff-pruning" ? "gradients (t until loss < thr * max)" : "gradients (every t)", scheduler.numTrainTimesteps, 0, "t");
    torch.manualSeed(args.seed);
    const report = pruneUNet(model, {
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
      importance,
      onGradientStep: (t, loss) => progress.update(t + 1, `loss ${loss.toFixed(4)}`),
    });
    const g = report.gradients;
    if (g && g.losses.length < progress.total) {
      progress.total = g.losses.length;
      progress.update(g.losses.length, `stopped after t = ${g.tPrime}: loss below ${g.thr} x max`);
    }
    if (report.after.params === report.before.params) {
      const what = `the options removed no channel (params ${report.before.params} before and after)`;
      if (!args.allowUnchanged) throw new Error(`${what}: raise --ratio or lower --round-to, or add --allow-unchanged to write the model as it is`);
      if (!warnings.some((w) => w.includes("--allow-unchanged"))) console.error(`warning: ${what}; writing it anyway (--allow-unchanged)`);
    }
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
    // The folder is built beside --out and renamed into place: a reader sees the previous model
    // and record or the new ones, never a mix, and a failure leaves nothing.
    writeFolderAtomic(args.out, (dir) => {
      model.savePretrained(dir);
      writeJsonAtomic(join(dir, SCHEDULER_FILE), scheduler.toJSON());
      writeJsonAtomic(join(dir, PRUNING_FILE), record);
    });
    return record;
  } finally {
    model.dispose();
    calib?.calibration.images.dispose();
    calib?.calibration.noise.dispose();
  }
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
    .option("--max-ratio <r>", "no group loses more than this fraction, in (0, 1]", positiveFraction, 1)
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
    .option("--allow-unchanged", "write the model even when the options remove no channel (refused otherwise)")
    .action((args: PruneArgs) => {
      const r = pruneAction(args);
      if (args.json) console.log(JSON.stringify({ method: r.method, ratio: r.ratio, params: r.params, macs: r.macs, t_prime: r.diff_pruning?.t_prime ?? null, out: args.out }));
      else console.log(summary(r));
    });
}
