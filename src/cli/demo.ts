// `diffprune demo`, README's first command: Diff-Pruning end to end on the shipped Fashion-MNIST
// model, against the paper's baselines, into a resumable run folder with report.html.
import { join } from "node:path";
import type { Command } from "commander";
import { packageRoot } from "../io/index.js";
import { CRITERIA } from "../pruning/index.js";
import { SKIP_TYPES, type SkipType } from "../diffusion/index.js";
import { runComparison, SCRATCH, studyPointer, type ComparisonOptions, type ComparisonRow } from "../workflow/index.js";
import { fraction, learningRate, nonNegativeInt, oneOf, positiveInt, SKIP_HELP } from "./args.js";
import { Progress } from "./progress.js";

/** The shipped model. */
export const EMBEDDED_MODEL = join(packageRoot(), "models", "fashion-mnist");
/** The shipped latent diffusion pipeline (AutoencoderKL + class-conditional UNet on its 8x8 latents). */
export const EMBEDDED_LATENT_MODEL = join(packageRoot(), "models", "fashion-mnist-ldm");

/**
 * The shipped model trained 2,600 steps at batch 64; the paper fine-tunes for 10-20% of the
 * original training. The default (16.6 minutes measured on 2 cores) fine-tunes 5% of the steps at
 * half the batch; --full fine-tunes 20% at the original batch and adds the from-scratch row.
 */
const BUDGETS = {
  default: { finetuneSteps: 130, batchSize: 32, numSamples: 128, samplingSteps: 50, calibBatch: 8, methods: ["diff-pruning", "taylor", "magnitude", "random"] },
  full: { finetuneSteps: 520, batchSize: 64, numSamples: 250, samplingSteps: 100, calibBatch: 16, methods: ["diff-pruning", "taylor", "magnitude", "random", "scratch"] },
  /** The latent pipeline's UNet trained 4,000 steps at batch 64: 10% of that, and with --full 20%. */
  latent: { finetuneSteps: 400, batchSize: 64, numSamples: 500, samplingSteps: 50, calibBatch: 16, methods: ["diff-pruning", "taylor", "magnitude", "random"] },
  latentFull: { finetuneSteps: 800, batchSize: 64, numSamples: 1000, samplingSteps: 100, calibBatch: 32, methods: ["diff-pruning", "taylor", "magnitude", "random", "scratch"] },
};

interface DemoArgs {
  model?: string;
  data: string;
  out?: string;
  latent?: boolean;
  methods?: string;
  ratio: number;
  thr: number;
  full?: boolean;
  finetuneSteps?: number;
  batchSize?: number;
  lr: number;
  numSamples?: number;
  samplingSteps?: number;
  skip: SkipType;
  calibBatch?: number;
  seed: number;
  json?: boolean;
}

const METHOD_NAMES = [...CRITERIA.map((c) => c.name), SCRATCH];

export function demoOptions(args: DemoArgs): ComparisonOptions {
  const budget = BUDGETS[args.latent ? (args.full ? "latentFull" : "latent") : args.full ? "full" : "default"];
  const methods = args.methods === undefined ? budget.methods : args.methods.split(",").map((m) => m.trim()).filter(Boolean);
  for (const m of methods) if (!METHOD_NAMES.includes(m)) throw new Error(`unknown method "${m}" in --methods: use ${METHOD_NAMES.join(", ")}`);
  if (methods.length === 0) throw new Error(`--methods is empty: name at least one of ${METHOD_NAMES.join(", ")}`);
  const samplingSteps = args.samplingSteps ?? budget.samplingSteps;
  if (samplingSteps < 2 && (args.skip === "uniform" || args.skip === "quad"))
    throw new Error(`--skip ${args.skip} (the paper's sampler) needs --sampling-steps 2 or more; for one step use --skip leading`);
  return {
    model: args.model ?? (args.latent ? EMBEDDED_LATENT_MODEL : EMBEDDED_MODEL),
    data: args.data,
    out: args.out ?? join("runs", args.latent ? "demo-latent" : "demo"),
    methods,
    ratio: args.ratio,
    thr: args.thr,
    calibBatch: args.calibBatch ?? budget.calibBatch,
    finetuneSteps: args.finetuneSteps ?? budget.finetuneSteps,
    batchSize: args.batchSize ?? budget.batchSize,
    lr: args.lr,
    numSamples: args.numSamples ?? budget.numSamples,
    samplingSteps,
    skip: args.skip,
    latencyRepeats: args.full ? 9 : 5,
    seed: args.seed,
  };
}

/** The results as an aligned text table (the paper's Table 1 columns). */
export function formatTable(rows: ComparisonRow[]): string {
  const cells = [["method", "params", "MACs", "FID", "SSIM [95% CI]", "steps", "ms (b1)", "speed-up"]];
  for (const r of rows) {
    cells.push([
      r.name,
      `${(r.params / 1e6).toFixed(3)}M`,
      `${(r.macs / 1e6).toFixed(1)}M`,
      r.fid === null ? "-" : r.fid.toFixed(2),
      r.ssim === null ? "-" : `${r.ssim.toFixed(4)}${r.ssim_ci95 ? ` [${r.ssim_ci95[0].toFixed(3)}, ${r.ssim_ci95[1].toFixed(3)}]` : ""}`,
      r.finetune_steps === null ? "-" : String(r.finetune_steps),
      r.latency_ms_batch1.toFixed(2),
      r.speedup_batch1 === null ? "-" : `${r.speedup_batch1.toFixed(2)}x`,
    ]);
  }
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n");
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("Diff-Pruning end to end on the shipped model: prune with every criterion, fine-tune, sample, evaluate, report.html")
    .option("--model <dir>", "the pretrained model folder or pipeline (default: the shipped model; --latent: the shipped latent pipeline)")
    .option("--data <spec>", "its training data (fine-tuning, calibration, FID statistics)", "fashion-mnist")
    .option("--out <dir>", "the run folder (an interrupted run continues there; default runs/demo, --latent runs/demo-latent)")
    .option("--latent", `the paper's latent diffusion experiment on the shipped latent pipeline (its UNet pruned; the autoencoder untouched): ${BUDGETS.latent.finetuneSteps} fine-tuning steps, ${BUDGETS.latent.numSamples} samples; with --full ${BUDGETS.latentFull.finetuneSteps} steps, ${BUDGETS.latentFull.numSamples} samples and the scratch row`)
    .option("--methods <list>", `comma-separated criteria (default ${BUDGETS.default.methods.join(",")}; --full adds scratch: the pruned size re-initialised and trained for the same budget)`)
    .option("--ratio <r>", "pruning ratio per group", fraction(), 0.3)
    .option("--thr <x>", "Diff-Pruning's loss threshold", fraction(), 0.05)
    .option("--full", `the longer budget: ${BUDGETS.full.finetuneSteps} fine-tuning steps at batch ${BUDGETS.full.batchSize} (20% of the original training), ${BUDGETS.full.numSamples} samples, DDIM ${BUDGETS.full.samplingSteps} steps, the scratch row`)
    .option("--finetune-steps <n>", `fine-tuning steps (default ${BUDGETS.default.finetuneSteps} at batch ${BUDGETS.default.batchSize}; --full ${BUDGETS.full.finetuneSteps} at ${BUDGETS.full.batchSize})`, positiveInt)
    .option("--batch-size <n>", "fine-tuning batch", positiveInt)
    .option("--lr <x>", "fine-tuning learning rate, constant from the first step (ddpm_train.py's recipe: Adam, no warm-up, EMA 0.9999), in (0, 1]", learningRate(), 2e-4)
    .option("--num-samples <n>", "samples per model for FID and SSIM", positiveInt)
    .option("--sampling-steps <n>", "DDIM steps", positiveInt)
    .option("--skip <type>", SKIP_HELP, oneOf<SkipType>(...SKIP_TYPES), "uniform")
    .option("--calib-batch <n>", "calibration images for the gradient criteria", positiveInt)
    .option("--seed <n>", "seed of the noise, the calibration draw and the fine-tuning", nonNegativeInt, 0)
    .option("--json", "print metrics.json (options, sampler, rows) as JSON when done; the stages go to stderr")
    .action((args: DemoArgs) => {
      const start = Date.now();
      const bars = new Map<string, Progress>();
      const say = args.json ? console.error : console.log;
      const options = demoOptions(args);
      const metrics = runComparison(options, {
        onStage: (stage, total, text) => say(`\n[${stage}/${total}] ${text}`),
        onMessage: (text) => say(text),
        onProgress: (label, done, total) => {
          let bar = bars.get(label);
          if (!bar) bars.set(label, (bar = new Progress(label, total, Math.max(0, done - 1))));
          bar.total = total;
          bar.update(done);
        },
      });
      if (args.json) return console.log(JSON.stringify(metrics));
      console.log(`\n${formatTable(metrics.rows)}`);
      if (!args.latent) console.log(`\n${studyPointer().join("\n")}`);
      console.log(`\n${options.out}/report.html, metrics.json (${((Date.now() - start) / 60000).toFixed(1)} min)`);
    });
}
