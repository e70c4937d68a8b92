// A study run's folder: its options, where each stage leaves its result, and what those results
// hold. A stage is done when its file is there; the files are written atomically, so a killed run
// leaves each one whole or absent.
//
//   study-options.json       the options (a resumed run must give the same)
//   noise.safetensors        the sampling noise shared by every model (and every seed)
//   heldout.safetensors      the held-out batch: images, noise, one timestep per image and band
//   real/                    features of two disjoint real subsets, and floor.json (FID, KID between them)
//   pretrained/              samples, grid.png, metrics.json (band losses, FID, KID)
//   seed-<s>/calibration.safetensors
//   seed-<s>/<method>/pruned/                       the pruned model (pruning.json)
//   seed-<s>/<method>/prefinetune.json, grid.png    SSIM against the pretrained samples, band losses
//   seed-<s>/<method>/finetune/                     the fine-tuning run, continued from budget to budget
//   seed-<s>/<method>/budget-<b>/model, metrics.json, grid.png
//   seed-<s>/sweep/thr-<thr>.json, <method>-ratio-<r>.json
//   study.json, report.html
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { SkipType } from "../diffusion/index.js";
import { readRunLog } from "../diffusion/run-log.js";
import { RUN_CONFIG } from "./finetune.js";

export interface StudyOptions {
  /** The pretrained model folder (unconditional, on pixels). */
  model: string;
  /** Training data: calibration, fine-tuning, and the real images FID and KID compare with. */
  data: string;
  /** The held-out split whose denoising loss is measured (default: the test split of `data`). */
  heldoutData: string;
  out: string;
  /** Seeds of the calibration draw, the pruning and the fine-tuning; one study row each. */
  seeds: number[];
  /** Criteria compared (names from CRITERIA other than reinit). */
  methods: string[];
  /** Also the pruned architecture re-initialised and trained for each budget ("scratch"). */
  scratch: boolean;
  ratio: number;
  thr: number;
  calibBatch: number;
  /** Diff-Pruning's thresholds swept (pre-fine-tune SSIM and T'). */
  thrSweep: number[];
  /** Ratios swept for each criterion (pre-fine-tune SSIM and MACs). */
  ratioSweep: number[];
  /** Fine-tuning budgets as fractions of the base model's training steps. */
  budgets: number[];
  /** The base model's training steps (from its run log, or given). */
  baseSteps: number;
  batchSize: number;
  lr: number;
  /** Samples per model for FID, KID and post-fine-tune SSIM. */
  numSamples: number;
  /** Samples per model for the pre-fine-tune SSIM and the sweeps (the first of the shared noise). */
  consistencySamples: number;
  samplingSteps: number;
  skip: SkipType;
  /** Held-out images whose denoising loss is measured. */
  heldoutBatch: number;
  /** Timestep bands of the held-out loss (equal widths over the training schedule). */
  bands: number;
  kidSubsets: number;
  kidSubsetSize: number;
  /** Seeds the sampling noise, the held-out batch and the real subsets (shared by every seed). */
  noiseSeed: number;
}

/** A model measured right after pruning (no fine-tuning). */
export interface PrefinetuneResult {
  params: number;
  macs: number;
  /** Diff-Pruning's T' (the last timestep of its gradient loop), null for the other criteria. */
  t_prime: number | null;
  /** Mean SSIM against the pretrained samples from the same noise, and per image. */
  ssim: number;
  ssim_per_image: number[];
  /** The held-out denoising loss per timestep band. */
  band_losses: number[];
}

/** One point of a sweep. */
export interface SweepPoint {
  method: string;
  ratio: number;
  thr: number | null;
  params: number;
  macs: number;
  t_prime: number | null;
  ssim: number;
}

/** A model's sample-quality figures against the real images; null where the classifier cannot read the images. */
export interface QualityResult {
  fid: number | null;
  kid: number | null;
  kid_std: number | null;
}

/** A fine-tuned model measured. */
export interface FinetunedResult extends QualityResult {
  budget: number;
  steps: number;
  params: number;
  macs: number;
  ssim: number;
  ssim_per_image: number[];
}

export interface PretrainedResult extends QualityResult {
  params: number;
  macs: number;
  /** The held-out loss's timestep bands [lo, hi), and the loss in each. */
  band_edges: [number, number][];
  band_losses: number[];
}

/** FID and KID between two disjoint real subsets of `num_samples` images: what a perfect model would score. */
export interface FloorResult extends QualityResult {
  num_samples: number;
  extractor: string;
}

export const STUDY_OPTIONS = "study-options.json";

const tag = (x: number): string => String(x);

export const studyPaths = (out: string) => ({
  options: join(out, STUDY_OPTIONS),
  noise: join(out, "noise.safetensors"),
  heldout: join(out, "heldout.safetensors"),
  realFeatures: join(out, "real", "features.safetensors"),
  floor: join(out, "real", "floor.json"),
  pretrained: join(out, "pretrained"),
  pretrainedSamples: join(out, "pretrained", "samples.safetensors"),
  pretrainedMetrics: join(out, "pretrained", "metrics.json"),
  seed: (s: number) => join(out, `seed-${s}`),
  calibration: (s: number) => join(out, `seed-${s}`, "calibration.safetensors"),
  method: (s: number, m: string) => join(out, `seed-${s}`, m),
  pruned: (s: number, m: string) => join(out, `seed-${s}`, m, "pruned"),
  prefinetune: (s: number, m: string) => join(out, `seed-${s}`, m, "prefinetune.json"),
  finetune: (s: number, m: string) => join(out, `seed-${s}`, m, "finetune"),
  budget: (s: number, m: string, b: number) => join(out, `seed-${s}`, m, `budget-${tag(b)}`),
  thrPoint: (s: number, thr: number) => join(out, `seed-${s}`, "sweep", `thr-${tag(thr)}.json`),
  ratioPoint: (s: number, m: string, r: number) => join(out, `seed-${s}`, "sweep", `${m}-ratio-${tag(r)}.json`),
  /** Where a sweep point's model is pruned, measured, and removed. */
  sweepModel: (s: number, name: string) => join(out, `seed-${s}`, "sweep", `${name}-model`),
  study: join(out, "study.json"),
  report: join(out, "report.html"),
});

export type StudyPaths = ReturnType<typeof studyPaths>;

/** Fine-tuning steps of a budget: that fraction of the base model's training, at least one. */
export const budgetSteps = (o: Pick<StudyOptions, "baseSteps">, budget: number): number => Math.max(1, Math.round(budget * o.baseSteps));

/**
 * What the base model's run recorded: its steps (the last logged step of log.jsonl, beside the
 * model or in the run folder above a run's model/) and its batch size (the run's
 * train_config.json). Null fields where nothing says.
 */
export function baseTraining(model: string): { steps: number | null; batchSize: number | null } {
  let steps: number | null = null;
  for (const dir of [model, dirname(model)]) {
    const lines = readRunLog(join(dir, "log.jsonl")).lines;
    if (lines.length > 0) {
      steps = lines[lines.length - 1]!.step;
      break;
    }
  }
  let batchSize: number | null = null;
  for (const dir of [model, dirname(model)]) {
    const file = join(dir, RUN_CONFIG);
    if (!existsSync(file)) continue;
    const b = (JSON.parse(readFileSync(file, "utf8")) as { batchSize?: unknown }).batchSize;
    if (typeof b === "number" && Number.isInteger(b) && b > 0) batchSize = b;
    break;
  }
  return { steps, batchSize };
}
