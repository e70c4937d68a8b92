// The paper's comparison end to end: prune the pretrained model with each criterion at one ratio,
// fine-tune every pruned model for the same budget, sample all models (the pretrained one too)
// from the same noise, measure them, and write the report. Each stage leaves its result in the
// run folder and is skipped when that result is there, so an interrupted run continues where it
// stopped (fine-tuning resumes from its last checkpoint).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { encodePng, loadFile, makeGrid, OptionError, saveFile, writeFileAtomic, writeJsonAtomic } from "../io/index.js";
import { checkOutputs, makeDirs } from "../io/paths.js";
import { datasetPath, openDataset } from "../data/index.js";
import { disposePipeline, imageShape, loadPipeline, MODEL_INDEX, type Pipeline, type SkipType } from "../diffusion/index.js";
import { criterionNamed, drawCalibration, saveCalibration } from "../pruning/index.js";
import { bootstrapMean, ClassifierExtractor, compareSamples, evaluate, evaluationSamples } from "../metrics/index.js";
import { pruneModelFolder } from "./prune.js";
import { finetune, recipe } from "./finetune.js";
import { readPruningRecord, storedGradients, type PruningRecord, type StoredGradients } from "./record.js";
import { writeComparisonReport } from "./comparison-report.js";
import { studyPointer } from "./study-pointer.js";
import { comparisonPaths, PRETRAINED, SCRATCH, type ComparisonOptions, type ComparisonRow } from "./run-folder.js";

export interface ComparisonMetrics {
  options: ComparisonOptions;
  sampler: { scheduler: "ddim"; eta: 0; steps: number; skip: SkipType; num_samples: number };
  rows: ComparisonRow[];
  /** Diff-Pruning's gradient loop (stored as `diff_pruning`, with `t_prime`). */
  diff_pruning: StoredGradients | null;
}

export interface ComparisonHooks {
  /** A stage begins (1 to 6). */
  onStage?: (stage: number, total: number, text: string) => void;
  onMessage?: (text: string) => void;
  /** Progress within a stage: a label ("sample magnitude"), done and total. */
  onProgress?: (label: string, done: number, total: number) => void;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
const criterionOf = (method: string) => criterionNamed(method === SCRATCH ? "reinit" : method);

/** The run folder: new, empty, or an earlier run (to continue); never inside or around the inputs. */
export function checkComparisonPaths(o: Pick<ComparisonOptions, "model" | "data" | "out">): void {
  checkOutputs(
    [
      {
        flag: "out",
        path: o.out,
        kind: "folder",
        inPlace: true,
        reuse: (names) => (names.length === 0 || names.includes("demo.json") ? null : `the folder is not empty and holds no demo run (demo.json); choose a new or empty folder`),
      },
    ],
    [
      { flag: "model", path: o.model },
      { flag: "data", path: datasetPath(o.data) },
    ],
  );
}

function checkRunFolder(o: ComparisonOptions, hooks: ComparisonHooks): void {
  const file = join(o.out, "demo.json");
  if (existsSync(file)) {
    // Run folders from before `skip` existed were sampled with diffusers' leading spacing.
    const saved: Partial<ComparisonOptions> = { skip: "leading", ...readJson<Partial<ComparisonOptions>>(file) };
    const differs = (Object.keys(o) as (keyof ComparisonOptions)[]).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(o[k]));
    if (differs.length > 0)
      throw new OptionError((n) => `${o.out} holds a demo run with other options (${differs.map(n).join(", ")}); continue it with the same options, or give another ${n("out")}`);
    hooks.onMessage?.(`continuing the run in ${o.out}`);
  } else {
    makeDirs(o.out);
    writeJsonAtomic(file, o);
  }
}

/**
 * The shared inputs: sampling noise and the calibration batch (images and noise), both of the
 * UNet's input shape (a latent pipeline's latents; its calibration images are the autoencoder's).
 */
function prepare(o: ComparisonOptions, pipeline: Pipeline): void {
  const c = pipeline.model.config;
  const paths = comparisonPaths(o);
  if (!existsSync(paths.noise)) {
    torch.manualSeed(o.seed);
    torch.tidy(() => saveFile({ noise: torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]) }, paths.noise));
  }
  if (!existsSync(paths.calibration) && o.methods.some((m) => criterionOf(m).gradients !== null)) {
    const calib = drawCalibration(o.data, c, o.calibBatch, o.seed, imageShape(pipeline.model, pipeline.autoencoder));
    saveCalibration(paths.calibration, calib);
    torch.dispose([calib.images, calib.noise, ...(calib.labels ? [calib.labels] : [])]);
  }
}

function prune(o: ComparisonOptions, method: string): PruningRecord {
  const paths = comparisonPaths(o);
  const done = readPruningRecord(paths.pruned(method));
  if (done) return done;
  const criterion = criterionOf(method);
  return pruneModelFolder({
    model: o.model,
    seed: o.seed,
    method: criterion,
    ratio: o.ratio,
    thr: o.thr,
    ...(criterion.gradients !== null ? { calibration: paths.calibration } : {}),
    out: paths.pruned(method),
  });
}

function finetuneMethod(o: ComparisonOptions, method: string, hooks: ComparisonHooks): void {
  const paths = comparisonPaths(o);
  const done = paths.model(method);
  if (existsSync(join(done, "config.json")) || existsSync(join(done, MODEL_INDEX))) return;
  finetune({
    model: paths.pruned(method),
    data: o.data,
    out: paths.finetune(method),
    resume: true,
    train: recipe(o, o.seed, o.finetuneSteps),
    ...(hooks.onProgress ? { onStep: (info, total) => hooks.onProgress!(`fine-tune ${method}`, info.step, total) } : {}),
    ...(hooks.onMessage ? { onEvent: hooks.onMessage } : {}),
  });
}

/**
 * DDIM (eta 0) samples from the shared noise (a latent pipeline's decoded; a class-conditional
 * model's classes in turn), as 8-bit images: samples.safetensors and grid.png.
 */
function sample(o: ComparisonOptions, name: string, hooks: ComparisonHooks): void {
  const paths = comparisonPaths(o);
  const dir = paths.method(name);
  const file = join(dir, "samples.safetensors");
  if (existsSync(file)) return;
  const pipeline = loadPipeline({ model: paths.model(name) }, { latent: true });
  const noise = loadFile(paths.noise).get("noise")!;
  try {
    // a class-conditional model samples its classes in turn, the same classes for every model
    const samples = evaluationSamples(pipeline.model, pipeline.autoencoder, pipeline.scheduler, noise, {
      steps: o.samplingSteps,
      skip: o.skip,
      batchSize: 64,
      onStep: (done, total) => hooks.onProgress?.(`sample ${name}`, done, total),
    });
    makeDirs(dir);
    writeFileAtomic(join(dir, "grid.png"), torch.tidy(() => encodePng(makeGrid(samples.narrow(0, 0, Math.min(64, samples.shape[0]!)), 8))));
    saveFile({ samples }, file);
    samples.dispose();
  } finally {
    noise.dispose();
    disposePipeline(pipeline);
  }
}

function measure(o: ComparisonOptions, name: string, pretrained: ComparisonRow | null, hooks: ComparisonHooks): ComparisonRow {
  const paths = comparisonPaths(o);
  const file = join(paths.method(name), "metrics.json");
  if (existsSync(file)) return readJson<ComparisonRow>(file);
  const pipeline = loadPipeline({ model: paths.model(name) }, { latent: true });
  const { model, scheduler } = pipeline;
  const samples = loadFile(join(paths.method(name), "samples.safetensors")).get("samples")!;
  const reference = pretrained ? loadFile(join(paths.method(PRETRAINED), "samples.safetensors")).get("samples")! : null;
  const extractor = ClassifierExtractor.load();
  const image = imageShape(model, pipeline.autoencoder);
  const fidApplies = image.channels === 1 && image.size === 32;
  if (!fidApplies && !pretrained) hooks.onMessage?.(`  no FID: the shipped classifier reads 1x32x32 images, these are ${image.channels}x${image.size}x${image.size}`);
  let row: ComparisonRow;
  try {
    hooks.onMessage?.(`  ${name}: FID, SSIM, and timing the UNet (batch 1 and 64)`);
    const r = evaluate({
      model,
      scheduler,
      samples: { model: samples },
      fid: fidApplies ? { extractor, dataset: openDataset(o.data, { sampleSize: image.size, channels: image.channels }), spec: o.data } : null,
      latency: { batchSizes: [1, 64], warmup: 2, repeats: o.latencyRepeats },
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    });
    const consistency = reference ? compareSamples(samples, reference) : null;
    const ms = (b: number) => r.latency!.model.find((l) => l.batch_size === b)!.median_ms;
    row = {
      name,
      params: r.params.model,
      macs: r.macs.model,
      fid: r.fid?.model ?? null,
      fid_extractor: extractor.name,
      ssim: consistency?.ssim ?? null,
      ssim_ci95: consistency ? bootstrapMean(consistency.perImage, { seed: o.seed }).ci : null,
      mse: consistency?.mse ?? null,
      finetune_steps: pretrained ? o.finetuneSteps : null,
      latency_ms_batch1: ms(1),
      latency_ms_batch64: ms(64),
      speedup_batch1: pretrained ? pretrained.latency_ms_batch1 / ms(1) : null,
      speedup_batch64: pretrained ? pretrained.latency_ms_batch64 / ms(64) : null,
    };
  } finally {
    torch.dispose(reference ? [samples, reference] : [samples]);
    extractor.model.dispose();
    disposePipeline(pipeline);
  }
  writeJsonAtomic(file, row);
  return row;
}

/** Runs (or continues) the whole comparison; returns what metrics.json holds. */
export function runComparison(o: ComparisonOptions, hooks: ComparisonHooks = {}): ComparisonMetrics {
  for (const m of o.methods) if (m !== SCRATCH) criterionNamed(m);
  if (o.methods.length === 0) throw new OptionError((n) => `${n("methods")} is empty: name at least one criterion`);
  // Inputs are checked before anything is written: a bad model or dataset leaves no run folder.
  checkComparisonPaths(o);
  const pretrained = loadPipeline({ model: o.model }, { latent: true });
  // the study measures pixel-space models: a latent comparison's report does not point to it
  const pixelSpace = !pretrained.autoencoder;
  try {
    const image = imageShape(pretrained.model, pretrained.autoencoder);
    openDataset(o.data, { sampleSize: image.size, channels: image.channels });
    checkRunFolder(o, hooks);
    hooks.onStage?.(1, 6, `shared inputs: ${o.numSamples} noise samples, ${o.calibBatch} calibration images from ${o.data}`);
    prepare(o, pretrained);
  } finally {
    disposePipeline(pretrained);
  }

  const records = new Map<string, PruningRecord>();
  hooks.onStage?.(2, 6, `pruning at ratio ${o.ratio}: ${o.methods.join(", ")}`);
  for (const method of o.methods) {
    hooks.onMessage?.(`  ${method}`);
    const r = prune(o, method);
    records.set(method, r);
    hooks.onMessage?.(`  ${method}: params ${r.params.before} -> ${r.params.after}, MACs ${r.macs.before} -> ${r.macs.after}${r.gradients ? `, gradients over t = 0..${r.gradients.tPrime}` : ""}`);
  }

  hooks.onStage?.(3, 6, `fine-tuning each pruned model: ${o.finetuneSteps} steps at batch ${o.batchSize}`);
  for (const method of o.methods) {
    hooks.onMessage?.(`  ${method}`);
    finetuneMethod(o, method, hooks);
  }

  const names = [PRETRAINED, ...o.methods];
  hooks.onStage?.(4, 6, `sampling ${names.length} models from the same noise (DDIM, ${o.samplingSteps} steps, skip ${o.skip})`);
  for (const name of names) sample(o, name, hooks);

  hooks.onStage?.(5, 6, "measuring: FID, SSIM against the pretrained samples, params, MACs, latency");
  const base = measure(o, PRETRAINED, null, hooks);
  const rows = [base, ...o.methods.map((m) => measure(o, m, base, hooks))];

  hooks.onStage?.(6, 6, "report");
  const gradients = records.get("diff-pruning")?.gradients ?? null;
  const metrics: ComparisonMetrics = {
    options: o,
    sampler: { scheduler: "ddim", eta: 0, steps: o.samplingSteps, skip: o.skip, num_samples: o.numSamples },
    rows,
    diff_pruning: storedGradients(gradients),
  };
  writeJsonAtomic(join(o.out, "metrics.json"), metrics);
  writeComparisonReport(o, rows, gradients, records, pixelSpace ? studyPointer() : []);
  return metrics;
}
