// A comparison run's folder: where each method's pruned model, fine-tuning run, samples and
// metrics live, and the options and result rows that describe it.
import { join } from "node:path";
import type { SkipType } from "../diffusion/index.js";
import { runModelDir } from "./finetune.js";

/** A model of the pruned size, re-initialised and trained for the same budget (pruned with reinit). */
export const SCRATCH = "scratch";
export const PRETRAINED = "pretrained";

export interface ComparisonOptions {
  /** The pretrained model folder. */
  model: string;
  /** Training data: fine-tuning, calibration and FID's reference statistics. */
  data: string;
  out: string;
  /** Pruning criteria compared (names from CRITERIA), and SCRATCH. */
  methods: string[];
  ratio: number;
  thr: number;
  calibBatch: number;
  finetuneSteps: number;
  batchSize: number;
  lr: number;
  numSamples: number;
  samplingSteps: number;
  /** DDIM's timesteps; "uniform" is the paper's sampler. */
  skip: SkipType;
  latencyRepeats: number;
  seed: number;
}

export interface ComparisonRow {
  name: string;
  params: number;
  macs: number;
  /** null when the classifier cannot read the model's images (it takes 1x32x32). */
  fid: number | null;
  fid_extractor: string;
  /** Mean SSIM against the pretrained model's samples from the same noise. */
  ssim: number | null;
  /** Its 95% percentile-bootstrap interval over the images (10,000 resamples). */
  ssim_ci95?: [number, number] | null;
  mse: number | null;
  finetune_steps: number | null;
  latency_ms_batch1: number;
  latency_ms_batch64: number;
  speedup_batch1: number | null;
  speedup_batch64: number | null;
}

/** The folders of a run. */
export const comparisonPaths = (o: Pick<ComparisonOptions, "out" | "model">) => ({
  method: (name: string) => join(o.out, name),
  pruned: (name: string) => join(o.out, name, "pruned"),
  finetune: (name: string) => join(o.out, name, "finetune"),
  /** The model folder a row's samples and metrics come from. */
  model: (name: string) => (name === PRETRAINED ? o.model : runModelDir(join(o.out, name, "finetune"))),
  noise: join(o.out, "noise.safetensors"),
  calibration: join(o.out, "calibration.safetensors"),
});

