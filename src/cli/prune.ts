// `diffprune prune`: prune a UNet with one of the paper's criteria and write a loadable model
// folder (config.json, weights, scheduler config) and pruning.json (what changed, and for the
// gradient criteria the loss per timestep and T'). A latent pipeline's UNet is pruned and the
// pipeline written again, its autoencoder unchanged.
import type { Command } from "commander";
import { CRITERIA, criterionNamed, IMPORTANCE_VARIANTS, type ImportanceVariant } from "../pruning/index.js";
import { pruneModelFolder, type PruningRecord } from "../workflow/index.js";
import { cliMessage, fraction, nonNegativeInt, oneOf, positiveFraction, positiveInt } from "./args.js";
import { formatCount } from "./format.js";
import { addLaunchOptions, runLaunched, type LaunchArgs } from "./launch.js";
import { isMainProcess } from "../workflow/distributed.js";
import { Progress } from "./progress.js";

interface PruneArgs {
  model?: string;
  config?: string;
  method: string;
  ratio: number;
  thr: number;
  data?: string;
  calibration?: string;
  calibBatch: number;
  seed: number;
  global?: boolean;
  roundTo?: number;
  maxRatio: number;
  ignore?: string;
  iterativeSteps: number;
  pruneHeads?: boolean;
  importance: ImportanceVariant;
  out: string;
  json?: boolean;
  allowUnchanged?: boolean;
}

export function pruneAction(args: PruneArgs): PruningRecord {
  const criterion = criterionNamed(args.method);
  const main = isMainProcess(); // with several processes, rank 0 alone reports
  const progress = new Progress(criterion.gradients === "informative" ? "gradients (t until loss < thr * max)" : "gradients (every t)", 1, 0, "t");
  const record = pruneModelFolder({
    ...args,
    method: criterion,
    ignoredLayers: args.ignore ? args.ignore.split(",").map((s) => s.trim()).filter(Boolean) : [],
    onWarning: (w) => main && console.error(cliMessage(w)),
    onGradientStep: (t, loss, total) => {
      if (!main) return;
      progress.total = total;
      progress.update(t + 1, `loss ${loss.toFixed(4)}`);
    },
  });
  const g = record.gradients;
  if (main && g && g.losses.length < progress.total) {
    progress.total = g.losses.length;
    progress.update(g.losses.length, `stopped after t = ${g.tPrime}: loss below ${g.thr} x max`);
  }
  return record;
}

function summary(r: PruningRecord): string {
  const lines = [
    `${r.method} pruning at ratio ${r.ratio}${r.global ? " (global)" : ""}`,
    `params ${formatCount(r.params.before, "M")} -> ${formatCount(r.params.after, "M")}  MACs ${formatCount(r.macs.before, "G")} -> ${formatCount(r.macs.after, "G")}`,
  ];
  if (r.autoencoder) lines.push(`the latent pipeline's UNet (pipeline folder written; ${r.autoencoder.folder}/, its ${r.autoencoder.class_name}, copied unchanged)`);
  const g = r.gradients;
  if (g) lines.push(`gradients over t = 0..${g.tPrime} of ${g.timesteps} timesteps${g.thr === null ? "" : ` (thr ${g.thr})`}`);
  return lines.join("\n");
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command("prune")
    .description("prune a UNet's channels structurally (Diff-Pruning and the paper's baselines) and save the smaller model")
    .option("--model <dir>", "a diffusers model or pipeline folder; a latent pipeline (LDMPipeline) has its UNet pruned and is written as a pipeline")
    .option("--config <file>", "a UNet2DModel config.json instead of a checkpoint (weights drawn at random)")
    .requiredOption("--method <name>", `importance criterion: ${CRITERIA.map((c) => `${c.name} (${c.description})`).join("; ")}`)
    .requiredOption("--ratio <r>", "fraction of each group's channels to remove, in [0, 1)", fraction())
    .option("--thr <x>", "diff-pruning: stop accumulating after the first t with loss < thr * max loss", fraction(), 0.05)
    .option("--data <spec>", "calibration images for taylor/diff-pruning: fashion-mnist, folder:<path>, cifar10:<dir>, ... (a latent pipeline encodes them to latents)")
    .option("--calibration <file>", "calibration batch as safetensors (images in [-1, 1] and noise of the UNet's input shape: the same shape, or a latent pipeline's latents)")
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
      oneOf<ImportanceVariant>(...IMPORTANCE_VARIANTS),
      "diffusers",
    )
    .requiredOption("--out <dir>", "folder for the pruned model and pruning.json")
    .option("--json", "print pruning.json's summary as JSON")
    .option("--allow-unchanged", "write the model even when the options remove no channel (refused otherwise)");
  addLaunchOptions(cmd).action((args: PruneArgs & LaunchArgs) =>
    runLaunched(args, () => {
      const r = pruneAction(args);
      if (!isMainProcess()) return;
      if (args.json) console.log(JSON.stringify({ method: r.method, ratio: r.ratio, params: r.params, macs: r.macs, t_prime: r.gradients?.tPrime ?? null, out: args.out, autoencoder: r.autoencoder ?? null }));
      else console.log(summary(r));
    }),
  );
}
