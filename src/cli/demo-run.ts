// The Diff-Pruning workflow end to end, as the paper's comparison runs it: prune the pretrained
// model with each criterion at one ratio, fine-tune every pruned model for the same budget, sample
// all models (the pretrained one too) from the same noise, measure them, and write the report.
// Each stage leaves its result in the run folder and is skipped when that result is there, so an
// interrupted run continues where it stopped (fine-tuning resumes from its last checkpoint).
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import * as torch from "../torch/index.js";
import { encodePng, loadFile, makeGrid, saveFile, writeFileAtomic, writeJsonAtomic } from "../io/index.js";
import { checkOutputs, makeDirs } from "../io/paths.js";
import { openDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import { generate, samplingScheduler, type SkipType } from "../diffusion/index.js";
import { countOpsAndParams, drawCalibration, saveCalibration, unetForward } from "../pruning/index.js";
import { ClassifierExtractor, compareSamples, datasetStats, fid, measureLatency, quantize8bit, type GaussianStats } from "../metrics/index.js";
import { renderReport, type ReportRow } from "../report/index.js";
import { pruneAction, PRUNING_FILE, type PruningRecord } from "./prune.js";
import { trainAction } from "./train.js";
import { loadModelSource } from "./model-source.js";
import { lossPoints } from "./plot.js";
import { datasetPath } from "./args.js";
import { Progress } from "./progress.js";

export interface DemoOptions {
  /** The pretrained model folder. */
  model: string;
  /** Training data: fine-tuning, calibration and FID's reference statistics. */
  data: string;
  out: string;
  /** Pruning criteria compared; "scratch" is a model of the pruned size, re-initialised and trained for the same budget. */
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

export interface DemoRow {
  name: string;
  params: number;
  macs: number;
  /** null when the classifier cannot read the model's images (it takes 1x32x32). */
  fid: number | null;
  fid_extractor: string;
  ssim: number | null;
  mse: number | null;
  finetune_steps: number | null;
  latency_ms_batch1: number;
  latency_ms_batch64: number;
  speedup_batch1: number | null;
  speedup_batch64: number | null;
}

export interface DemoMetrics {
  options: DemoOptions;
  sampler: { scheduler: "ddim"; eta: 0; steps: number; skip: SkipType; num_samples: number };
  rows: DemoRow[];
  diff_pruning: { thr: number | null; losses: number[]; t_prime: number; timesteps: number } | null;
}

const PRETRAINED = "pretrained";
const stage = (n: number, text: string) => console.log(`\n[${n}/6] ${text}`);
const dirOf = (o: DemoOptions, name: string) => join(o.out, name);
/** The model folder a row's samples and metrics come from. */
const modelDir = (o: DemoOptions, name: string) => (name === PRETRAINED ? o.model : join(dirOf(o, name), "finetune", "model"));
/** A path as the user would type it: relative to the working folder when inside it. */
const displayPath = (p: string): string => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : p;
};
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;

function checkRunFolder(o: DemoOptions): void {
  const file = join(o.out, "demo.json");
  if (existsSync(file)) {
    // Run folders from before --skip were sampled with diffusers' leading spacing.
    const saved: Partial<DemoOptions> = { skip: "leading", ...readJson<Partial<DemoOptions>>(file) };
    const differs = (Object.keys(o) as (keyof DemoOptions)[]).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(o[k]));
    if (differs.length > 0)
      throw new Error(`${o.out} holds a demo run with other options (${differs.join(", ")}); continue it with the same options, or give another --out`);
    console.log(`continuing the run in ${o.out}`);
  } else {
    makeDirs(o.out);
    writeJsonAtomic(file, o);
  }
}

/** The run folder: new, empty, or an earlier demo run (to continue); never inside or around the inputs. */
export function checkDemoPaths(o: Pick<DemoOptions, "model" | "data" | "out">): void {
  checkOutputs(
    [
      {
        flag: "--out",
        path: o.out,
        kind: "folder",
        inPlace: true,
        reuse: (names) => (names.length === 0 || names.includes("demo.json") ? null : `the folder is not empty and holds no demo run (demo.json); choose a new or empty folder`),
      },
    ],
    [
      { flag: "--model", path: o.model },
      { flag: "--data", path: datasetPath(o.data) },
    ],
  );
}

/** The shared inputs: sampling noise and the calibration batch (images and noise). */
function prepare(o: DemoOptions, model: UNet2DModel): void {
  const c = model.config;
  const noiseFile = join(o.out, "noise.safetensors");
  if (!existsSync(noiseFile)) {
    torch.manualSeed(o.seed);
    torch.tidy(() => saveFile({ noise: torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]) }, noiseFile));
  }
  const calibFile = join(o.out, "calibration.safetensors");
  if (!existsSync(calibFile) && o.methods.some((m) => m === "diff-pruning" || m === "taylor")) {
    const calib = drawCalibration(o.data, c, o.calibBatch, o.seed);
    saveCalibration(calibFile, calib);
    torch.dispose([calib.images, calib.noise]);
  }
}

function prune(o: DemoOptions, method: string): PruningRecord {
  const out = join(dirOf(o, method), "pruned");
  const file = join(out, PRUNING_FILE);
  if (existsSync(file)) return readJson<PruningRecord>(file);
  const gradients = method === "diff-pruning" || method === "taylor";
  return pruneAction({
    model: o.model,
    seed: o.seed,
    method: method === "scratch" ? "reinit" : method,
    ratio: o.ratio,
    thr: o.thr,
    ...(gradients ? { calibration: join(o.out, "calibration.safetensors") } : {}),
    calibBatch: o.calibBatch,
    maxRatio: 1,
    iterativeSteps: 1,
    out,
  });
}

function finetune(o: DemoOptions, method: string): void {
  if (existsSync(join(modelDir(o, method), "config.json"))) return;
  trainAction({
    model: join(dirOf(o, method), "pruned"),
    data: o.data,
    out: join(dirOf(o, method), "finetune"),
    steps: o.finetuneSteps,
    batchSize: o.batchSize,
    lr: o.lr,
    warmup: Math.min(100, Math.floor(o.finetuneSteps / 10)),
    lrSchedule: "cosine",
    ema: true,
    flip: false,
    gradClip: 1,
    seed: o.seed,
    checkpointEvery: Math.max(10, Math.floor(o.finetuneSteps / 20)),
    sampleEvery: 0,
    resume: true,
  });
}

const load = (dir: string) => loadModelSource({ model: dir, seed: 0 });

/** DDIM (eta 0) samples from the shared noise, as 8-bit images: samples.safetensors and grid.png. */
function sample(o: DemoOptions, name: string): void {
  const dir = dirOf(o, name);
  const file = join(dir, "samples.safetensors");
  if (existsSync(file)) return;
  const { model, scheduler } = load(modelDir(o, name));
  const noise = loadFile(join(o.out, "noise.safetensors")).get("noise")!;
  const progress = new Progress(`sample ${name}`, o.samplingSteps, 0, "step");
  try {
    const raw = generate(model, samplingScheduler(scheduler, "ddim"), noise, {
      numInferenceSteps: o.samplingSteps,
      eta: 0,
      skip: o.skip,
      batchSize: 64,
      onStep: (done, total) => {
        progress.total = total;
        progress.update(done);
      },
    });
    const samples = quantize8bit(raw);
    makeDirs(dir);
    writeFileAtomic(join(dir, "grid.png"), torch.tidy(() => encodePng(makeGrid(samples.narrow(0, 0, Math.min(64, samples.shape[0]!)), 8))));
    saveFile({ samples }, file);
    torch.dispose([raw, samples]);
  } finally {
    noise.dispose();
    model.dispose();
  }
}

function measure(o: DemoOptions, name: string, pretrained: DemoRow | null, finetuneSteps: number | null): DemoRow {
  const file = join(dirOf(o, name), "metrics.json");
  if (existsSync(file)) return readJson<DemoRow>(file);
  const { model } = load(modelDir(o, name));
  const samples = loadFile(join(dirOf(o, name), "samples.safetensors")).get("samples")!;
  const extractor = ClassifierExtractor.load();
  const c = model.config;
  const fidApplies = c.in_channels === 1 && c.sample_size === 32;
  if (!fidApplies && !pretrained) console.log(`  no FID: the shipped classifier reads 1x32x32 images, these are ${c.in_channels}x${c.sample_size}x${c.sample_size}`);
  let stats: GaussianStats | null = null;
  let row: DemoRow;
  try {
    if (fidApplies) {
      const dataset = openDataset(o.data, { sampleSize: c.sample_size, channels: c.in_channels });
      const progress = new Progress(`features ${o.data}`, 1, 0, "img");
      stats = datasetStats(dataset, extractor, { spec: o.data, onProgress: (done, total) => ((progress.total = total), progress.update(done)) });
    }
    const f = stats ? fid(samples, stats, extractor).fid : null;
    let consistency: { ssim: number; mse: number } | null = null;
    if (pretrained) {
      const reference = loadFile(join(dirOf(o, PRETRAINED), "samples.safetensors")).get("samples")!;
      consistency = compareSamples(samples, reference);
      reference.dispose();
    }
    console.log(`  ${name}: timing the UNet (batch 1 and 64)`);
    const latency = measureLatency(model, { batchSizes: [1, 64], warmup: 2, repeats: o.latencyRepeats });
    const ms = (b: number) => latency.find((l) => l.batchSize === b)!.medianMs;
    row = {
      name,
      params: model.numParameters(),
      macs: countOpsAndParams(model, unetForward(model)).macs,
      fid: f,
      fid_extractor: extractor.name,
      ssim: consistency?.ssim ?? null,
      mse: consistency?.mse ?? null,
      finetune_steps: finetuneSteps,
      latency_ms_batch1: ms(1),
      latency_ms_batch64: ms(64),
      speedup_batch1: pretrained ? pretrained.latency_ms_batch1 / ms(1) : null,
      speedup_batch64: pretrained ? pretrained.latency_ms_batch64 / ms(64) : null,
    };
  } finally {
    torch.dispose(stats ? [samples, stats.mu, stats.sigma] : [samples]);
    extractor.model.dispose();
    model.dispose();
  }
  writeJsonAtomic(file, row);
  return row;
}

/** Fine-tuning loss by step, from the run's log.jsonl. */
function lossCurve(o: DemoOptions, name: string): [number, number][] {
  const file = join(dirOf(o, name), "finetune", "log.jsonl");
  return existsSync(file) ? lossPoints(file) : [];
}

export function writeReport(o: DemoOptions, metrics: DemoMetrics, records: Map<string, PruningRecord>): void {
  const rows: ReportRow[] = metrics.rows.map((r) => {
    const grid = join(dirOf(o, r.name), "grid.png");
    const row: ReportRow = {
      name: r.name,
      params: r.params,
      macs: r.macs,
      fid: r.fid,
      fidExtractor: r.fid_extractor,
      ssim: r.ssim,
      finetuneSteps: r.finetune_steps,
      latencyMs: r.latency_ms_batch1,
      speedup: r.speedup_batch1,
      samples: existsSync(grid) ? new Uint8Array(readFileSync(grid)) : null,
    };
    const curve = lossCurve(o, r.name);
    if (curve.length > 0) row.lossCurve = curve;
    return row;
  });
  const first = [...records.values()][0];
  const layers = first
    ? first.layers.map((l) => ({ name: l.name, before: l.out[0], after: Object.fromEntries([...records].map(([m, rec]) => [m, rec.layers.find((x) => x.name === l.name)?.out[1] ?? l.out[0]])) }))
    : null;
  const html = renderReport({
    title: "Diff-Pruning: pruned and fine-tuned models against the pretrained one",
    subtitle: `${displayPath(o.model)} on ${o.data}, ratio ${o.ratio}, ${o.finetuneSteps} fine-tuning steps at batch ${o.batchSize}; ${o.numSamples} samples, DDIM ${o.samplingSteps} steps (skip ${o.skip}) from the same noise`,
    rows,
    diffPruning: metrics.diff_pruning ? { losses: metrics.diff_pruning.losses, thr: metrics.diff_pruning.thr ?? 0, tPrime: metrics.diff_pruning.t_prime } : null,
    layers,
    notes: [
      "FID: Frechet distance of the shipped Fashion-MNIST classifier's features (not Inception), samples vs the training set.",
      `SSIM: against the pretrained model's samples from the same initial noise (DDIM, eta 0, skip ${o.skip}${o.skip === "uniform" || o.skip === "quad" ? ": the paper's sampler" : ""}), images in [0, 1].`,
      "Latency: median ms per UNet evaluation at batch 1 on this machine; speed-up = pretrained / pruned.",
      `MACs per image by Torch-Pruning's counting rules. Command: diffprune demo --out ${o.out}`,
    ],
  });
  writeFileAtomic(join(o.out, "report.html"), html);
}

/** Runs (or continues) the whole workflow; returns what metrics.json holds. */
export function runDemo(o: DemoOptions): DemoMetrics {
  // Inputs are checked before anything is written: a bad model or dataset leaves no run folder.
  checkDemoPaths(o);
  const pretrained = load(o.model);
  try {
    openDataset(o.data, { sampleSize: pretrained.model.config.sample_size, channels: pretrained.model.config.in_channels });
  } catch (err) {
    pretrained.model.dispose();
    throw err;
  }
  checkRunFolder(o);
  stage(1, `shared inputs: ${o.numSamples} noise samples, ${o.calibBatch} calibration images from ${o.data}`);
  prepare(o, pretrained.model);
  pretrained.model.dispose();

  const records = new Map<string, PruningRecord>();
  stage(2, `pruning at ratio ${o.ratio}: ${o.methods.join(", ")}`);
  for (const method of o.methods) {
    console.log(`  ${method}`);
    const r = prune(o, method);
    records.set(method, r);
    console.log(`  ${method}: params ${r.params.before} -> ${r.params.after}, MACs ${r.macs.before} -> ${r.macs.after}${r.diff_pruning ? `, gradients over t = 0..${r.diff_pruning.t_prime}` : ""}`);
  }

  stage(3, `fine-tuning each pruned model: ${o.finetuneSteps} steps at batch ${o.batchSize}`);
  for (const method of o.methods) {
    console.log(`  ${method}`);
    finetune(o, method);
  }

  const names = [PRETRAINED, ...o.methods];
  stage(4, `sampling ${names.length} models from the same noise (DDIM, ${o.samplingSteps} steps, skip ${o.skip})`);
  for (const name of names) sample(o, name);

  stage(5, "measuring: FID, SSIM against the pretrained samples, params, MACs, latency");
  const base = measure(o, PRETRAINED, null, null);
  const rows = [base, ...o.methods.map((m) => measure(o, m, base, o.finetuneSteps))];

  stage(6, "report");
  const dp = records.get("diff-pruning")?.diff_pruning ?? null;
  const metrics: DemoMetrics = { options: o, sampler: { scheduler: "ddim", eta: 0, steps: o.samplingSteps, skip: o.skip, num_samples: o.numSamples }, rows, diff_pruning: dp };
  writeJsonAtomic(join(o.out, "metrics.json"), metrics);
  writeReport(o, metrics, records);
  return metrics;
}

/** The results as an aligned text table (the paper's Table 1 columns). */
export function formatTable(rows: DemoRow[]): string {
  const cells = [["method", "params", "MACs", "FID", "SSIM", "steps", "ms (b1)", "speed-up"]];
  for (const r of rows) {
    cells.push([
      r.name,
      `${(r.params / 1e6).toFixed(3)}M`,
      `${(r.macs / 1e6).toFixed(1)}M`,
      r.fid === null ? "-" : r.fid.toFixed(2),
      r.ssim === null ? "-" : r.ssim.toFixed(4),
      r.finetune_steps === null ? "-" : String(r.finetune_steps),
      r.latency_ms_batch1.toFixed(2),
      r.speedup_batch1 === null ? "-" : `${r.speedup_batch1.toFixed(2)}x`,
    ]);
  }
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n");
}

