// The study of issue 18: the paper's claim measured over seeds with paired statistics. For each
// seed, each criterion prunes the pretrained model (the calibration draw seeded by the seed); right
// after pruning each model is measured against the pretrained one (SSIM from the same noise, the
// held-out denoising loss per timestep band), Diff-Pruning's threshold and every criterion's ratio
// are swept, and then each pruned model (and the same architecture from scratch) is fine-tuned
// with the reference recipe to each budget and measured again (FID and KID against real images,
// beside the real-vs-real floor; SSIM). Every stage leaves its file in the run folder and is
// skipped when that file is there, so an interrupted study continues where it stopped.
import { cpSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { OptionError, saveFile, writeJsonAtomic } from "../io/index.js";
import { checkOutputs, makeDirs, writeFileMakingDirs, writeFolderAtomic } from "../io/paths.js";
import { datasetPath, openDataset } from "../data/index.js";
import { disposePipeline, isClassConditional, loadPipeline, type Pipeline, type TrainOptions } from "../diffusion/index.js";
import { countOpsAndParams, criterionNamed, drawCalibration, saveCalibration, unetForward } from "../pruning/index.js";
import { compareSamples } from "../metrics/index.js";
import { pruneModelFolder } from "./prune.js";
import { finetune, recipe, runModelDir } from "./finetune.js";
import { readPruningRecord, writePruningRecord, type PruningRecord } from "./record.js";
import { gradientFiles, gradientKey, readGradientReport, storedGradients, writeGradientSnapshots } from "./study-gradients.js";
import { SCRATCH } from "./run-folder.js";
import { budgetSteps, studyPaths, type FinetunedResult, type FloorResult, type PrefinetuneResult, type PretrainedResult, type StudyOptions, type StudyPaths, type SweepPoint } from "./study-folder.js";
import { bandEdges, bandLosses, loadHeldout, pretrainedSamples, qualityApplies, sampleQuality, sampleShared, writeGrid, writeRealFeatures, writeSharedInputs } from "./study-measure.js";
import { assembleStudy, type StudyResult } from "./study-summary.js";
import { writeStudyReport } from "./study-report.js";

export interface StageEvent {
  /** 1-based position in the plan, and the plan's length. */
  index: number;
  total: number;
  label: string;
  /** Its result was already in the folder (an earlier run made it). */
  skipped: boolean;
  /** Seconds left for the stages not yet done, from the time per unit of work so far; null before the first timed stage. */
  etaSeconds: number | null;
}

export interface StudyHooks {
  onStage?: (event: StageEvent) => void;
  onMessage?: (text: string) => void;
  /** Progress within a stage: a label, done and total. */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** One step of the plan: done when its file is there. `cost` (in MACs) weighs it for the ETA. */
interface Stage {
  label: string;
  cost: number;
  done: () => boolean;
  run: () => void;
  /** It prunes with the seed's gradient snapshots. */
  readsGradients?: boolean;
}

/** About the MACs of one image through the FID classifier (3x3 convs of 32, 64, 128 channels at 32, 16, 8 px; a linear layer), for the ETA. */
const CLASSIFIER_MACS = 1e7;

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
const GRADIENT_CRITERIA = (methods: string[]) => methods.filter((m) => criterionNamed(m).gradients !== null);

/**
 * Options that only choose which stages run: each stage's file is named by its seed, method,
 * threshold, ratio or budget, so a continued study may add (or leave out) some. A budget smaller
 * than one already fine-tuned cannot be added (the shared run is past it).
 */
const EXTENSIBLE = new Set<keyof StudyOptions>(["seeds", "methods", "scratch", "thrSweep", "ratioSweep", "budgets"]);

/** The run folder: new, empty, or an earlier study (to continue with the same measuring options). */
function checkStudyFolder(o: StudyOptions, paths: StudyPaths, hooks: StudyHooks): void {
  checkOutputs(
    [{ flag: "out", path: o.out, kind: "folder", inPlace: true, reuse: (names) => (names.length === 0 || names.includes("study-options.json") ? null : "the folder is not empty and holds no study (study-options.json); choose a new or empty folder") }],
    [
      { flag: "model", path: o.model },
      { flag: "data", path: datasetPath(o.data) },
    ],
  );
  if (existsSync(paths.options)) {
    const saved = readJson<Partial<StudyOptions>>(paths.options);
    const differs = (Object.keys(o) as (keyof StudyOptions)[]).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(o[k]));
    const fixed = differs.filter((k) => !EXTENSIBLE.has(k));
    if (fixed.length > 0)
      throw new OptionError(
        (n) => `${o.out} holds a study with other options (${fixed.map(n).join(", ")}); continue it with the same options (only ${[...EXTENSIBLE].map(n).join(", ")} may change), or give another ${n("out")}`,
      );
    hooks.onMessage?.(`continuing the study in ${o.out}${differs.length > 0 ? ` with new ${differs.join(", ")} (finished stages are kept)` : ""}`);
    if (differs.length > 0) writeJsonAtomic(paths.options, o);
  } else {
    makeDirs(o.out);
    writeJsonAtomic(paths.options, o);
  }
}

function checkOptions(o: StudyOptions): void {
  for (const m of o.methods) if (m === SCRATCH || m === "reinit") throw new OptionError((n) => `${n("methods")} names criteria; the from-scratch baseline is ${n("scratch")}`);
  for (const m of o.methods) criterionNamed(m);
  if (o.methods.length === 0) throw new OptionError((n) => `${n("methods")} is empty: name at least one criterion`);
  if (o.seeds.length === 0) throw new OptionError((n) => `${n("seeds")} is empty: give at least one seed`);
  if (new Set(o.seeds).size !== o.seeds.length) throw new OptionError((n) => `${n("seeds")} repeats a seed`);
  if (o.consistencySamples > o.numSamples) throw new OptionError((n) => `${n("consistencySamples")} ${o.consistencySamples} is more than ${n("numSamples")} ${o.numSamples}: they are the first of the same noise`);
}

/** Loads a model folder, runs `fn`, and frees it. */
function withPipeline<T>(dir: string, fn: (p: Pipeline) => T): T {
  const p = loadPipeline({ model: dir });
  try {
    return fn(p);
  } finally {
    disposePipeline(p);
  }
}

/** Runs (or continues) the study; returns what study.json holds. */
export function runStudy(o: StudyOptions, hooks: StudyHooks = {}): StudyResult {
  checkOptions(o);
  const paths = studyPaths(o.out);
  const base = loadPipeline({ model: o.model }, { latent: true });
  let macs: number;
  let T: number;
  let measurable: boolean;
  try {
    if (base.autoencoder || isClassConditional(base.model.config))
      throw new OptionError((n) => `${n("model")} ${o.model} is ${base.autoencoder ? "a latent pipeline" : "class-conditional"}; the study measures unconditional models on pixels (the paper's DDPM setting)`);
    for (const spec of [o.data, o.heldoutData]) openDataset(spec, { sampleSize: base.model.config.sample_size, channels: base.model.config.in_channels });
    checkStudyFolder(o, paths, hooks);
    macs = countOpsAndParams(base.model, unetForward(base.model)).macs;
    T = base.scheduler.numTrainTimesteps;
    measurable = qualityApplies(base.model);
    if (!measurable) hooks.onMessage?.(`no FID or KID: the shipped classifier reads 1x32x32 images, this model makes ${base.model.config.in_channels}x${base.model.config.sample_size}x${base.model.config.sample_size}`);
  } finally {
    disposePipeline(base);
  }

  const plan = planStudy(o, paths, { macs, T, measurable }, hooks);
  // The ETA: seconds per unit of cost so far, times the cost left (what was not done at the start,
  // from this stage on; stages run in order). Stages of no cost (bookkeeping) are not timed.
  let [costDone, seconds] = [0, 0];
  const left = plan.map((s) => (s.done() ? 0 : s.cost));
  plan.forEach((stage, i) => {
    const skipped = stage.done();
    const remaining = left.slice(i).reduce((a, c) => a + c, 0);
    hooks.onStage?.({ index: i + 1, total: plan.length, label: stage.label, skipped, etaSeconds: costDone > 0 ? (seconds / costDone) * remaining : null });
    if (skipped) return;
    const start = Date.now();
    stage.run();
    if (stage.cost > 0) [costDone, seconds] = [costDone + stage.cost, seconds + (Date.now() - start) / 1000];
  });
  return writeStudy(o, paths);
}

/** study.json and report.html from whatever results the folder holds. */
export function writeStudy(o: StudyOptions, paths: StudyPaths = studyPaths(o.out)): StudyResult {
  const result = assembleStudy(o, paths);
  writeJsonAtomic(paths.study, result);
  writeStudyReport(o, paths, result);
  return result;
}

interface ModelFacts {
  /** MACs of the pretrained UNet per image. */
  macs: number;
  /** Training timesteps. */
  T: number;
  /** Whether FID and KID apply (the classifier reads the images). */
  measurable: boolean;
}

/** Every stage of the study in order: the shared inputs, then pre-fine-tune work for every seed, then fine-tuning. */
function planStudy(o: StudyOptions, paths: StudyPaths, facts: ModelFacts, hooks: StudyHooks): Stage[] {
  const { macs, T } = facts;
  const prunedMacs = (ratio: number) => macs * (1 - ratio) ** 2;
  const sampling = (n: number, m: number) => n * o.samplingSteps * m;
  const bandCost = (m: number) => o.heldoutBatch * o.bands * m;
  const all = o.scratch ? [...o.methods, SCRATCH] : o.methods;
  const progress = (label: string) => (done: number, total: number) => hooks.onProgress?.(label, done, total);
  const stages: Stage[] = [
    {
      label: `shared inputs: ${o.numSamples} noise samples, ${o.heldoutBatch} held-out images of ${o.heldoutData}`,
      cost: 0,
      done: () => existsSync(paths.noise) && existsSync(paths.heldout),
      run: () => withPipeline(o.model, (p) => writeSharedInputs(o, paths, p.model, p.scheduler)),
    },
  ];
  if (facts.measurable)
    stages.push({
      label: `real images: features of 2 x ${o.numSamples} images of ${o.data}, and the real-vs-real floor`,
      cost: 2 * o.numSamples * CLASSIFIER_MACS,
      done: () => existsSync(paths.floor),
      run: () => {
        const floor = writeRealFeatures(o, paths.realFeatures, progress("real features"));
        writeJsonAtomic(paths.floor, { ...floor, num_samples: o.numSamples, extractor: "fmnist-classifier" } satisfies FloorResult);
      },
    });
  stages.push({
    label: `pretrained model: ${o.numSamples} samples (DDIM ${o.samplingSteps} steps, skip ${o.skip}), held-out loss${facts.measurable ? ", FID, KID" : ""}`,
    cost: sampling(o.numSamples, macs) + bandCost(macs),
    done: () => existsSync(paths.pretrainedMetrics),
    run: () => measurePretrained(o, paths, progress("sample pretrained")),
  });

  const thrPoints = o.methods.includes("diff-pruning") ? o.thrSweep.filter((t) => t !== o.thr) : [];
  const dpThresholds = [o.thr, ...thrPoints];
  for (const seed of o.seeds) {
    const gradient = GRADIENT_CRITERIA(o.methods);
    if (gradient.length > 0)
      stages.push({
        label: `seed ${seed}: calibration batch (${o.calibBatch} images of ${o.data})`,
        cost: 0,
        done: () => existsSync(paths.calibration(seed)),
        run: () => writeCalibration(o, paths, seed),
      });
    // Every prune of this seed that scores with gradients reads them from one loop (study-gradients.ts).
    const consumers: Stage[] = [];
    const files = gradientFiles(paths, seed);
    if (gradient.length > 0)
      stages.push({
        label: `seed ${seed}: gradients of the denoising loss over ${gradient.includes("taylor") || dpThresholds.includes(0) ? "every timestep" : "the informative timesteps"} (${o.calibBatch} calibration images)`,
        cost: 3 * o.calibBatch * T * macs,
        done: () => existsSync(files.report) || consumers.every((c) => c.done()),
        run: () => writeGradientSnapshots(o, paths, seed, o.methods.includes("diff-pruning") ? dpThresholds : [], gradient.includes("taylor"), (t, total) => hooks.onProgress?.("gradients", t, total)),
      });
    const firstConsumer = stages.length;
    for (const m of all)
      stages.push({
        label: `seed ${seed}: prune with ${m} at ratio ${o.ratio}`,
        readsGradients: gradient.includes(m),
        cost: macs,
        // a gradient criterion's record holds its loop, added just after the prune
        done: () => {
          const record = readPruningRecord(paths.pruned(seed, m));
          return record !== null && (record.gradients !== null || !gradient.includes(m));
        },
        run: () => void pruneFor(o, paths, seed, m, o.ratio, o.thr, paths.pruned(seed, m)),
      });
    for (const m of o.methods)
      stages.push({
        label: `seed ${seed}: ${m} before fine-tuning: SSIM on ${o.consistencySamples} samples, held-out loss`,
        cost: sampling(o.consistencySamples, prunedMacs(o.ratio)) + bandCost(prunedMacs(o.ratio)),
        done: () => existsSync(paths.prefinetune(seed, m)),
        run: () => measurePrefinetune(o, paths, seed, m, progress(`sample ${m}`)),
      });
    for (const thr of thrPoints)
      stages.push({
        label: `seed ${seed}: thr sweep, diff-pruning at thr ${thr}`,
        readsGradients: true,
        cost: sampling(o.consistencySamples, prunedMacs(o.ratio)),
        done: () => existsSync(paths.thrPoint(seed, thr)),
        run: () => sweepPoint(o, paths, seed, "diff-pruning", o.ratio, thr, paths.thrPoint(seed, thr), `thr-${thr}`, hooks),
      });
    for (const m of o.methods)
      for (const r of o.ratioSweep.filter((r) => r !== o.ratio))
        stages.push({
          label: `seed ${seed}: ratio sweep, ${m} at ratio ${r}`,
          readsGradients: gradient.includes(m),
          cost: sampling(o.consistencySamples, prunedMacs(r)),
          done: () => existsSync(paths.ratioPoint(seed, m, r)),
          run: () => sweepPoint(o, paths, seed, m, r, o.thr, paths.ratioPoint(seed, m, r), `${m}-ratio-${r}`, hooks),
        });
    consumers.push(...stages.slice(firstConsumer).filter((c) => c.readsGradients));
    if (gradient.length > 0)
      stages.push({
        label: `seed ${seed}: remove the gradient snapshots (every prune of the seed is done)`,
        cost: 0,
        done: () => !existsSync(files.dir),
        run: () => rmSync(files.dir, { recursive: true, force: true }),
      });
  }

  const budgets = [...o.budgets].sort((a, b) => a - b);
  for (const seed of o.seeds)
    for (const m of all) {
      let trained = 0;
      for (const b of budgets) {
        const steps = budgetSteps(o, b);
        const trainCost = 3 * (steps - trained) * o.batchSize * prunedMacs(o.ratio);
        trained = steps;
        stages.push({
          label: `seed ${seed}: fine-tune ${m} to ${steps} steps (${b} of the base model's ${o.baseSteps})`,
          cost: trainCost,
          done: () => existsSync(join(paths.budget(seed, m, b), "model", "config.json")),
          run: () => finetuneTo(o, paths, seed, m, b, hooks),
        });
        stages.push({
          label: `seed ${seed}: ${m} after ${steps} steps: ${o.numSamples} samples, SSIM${facts.measurable ? ", FID, KID" : ""}`,
          cost: sampling(o.numSamples, prunedMacs(o.ratio)),
          done: () => existsSync(join(paths.budget(seed, m, b), "metrics.json")),
          run: () => measureFinetuned(o, paths, seed, m, b, progress(`sample ${m} (${b})`)),
        });
      }
    }
  return stages;
}

function writeCalibration(o: StudyOptions, paths: StudyPaths, seed: number): void {
  const config = withPipeline(o.model, (p) => p.model.config);
  const calib = drawCalibration(o.data, config, o.calibBatch, seed);
  try {
    writeFileMakingDirs(paths.calibration(seed), (f) => saveCalibration(f, calib));
  } finally {
    torch.dispose([calib.images, calib.noise, ...(calib.labels ? [calib.labels] : [])]);
  }
}

/**
 * Prunes with `method` into `out`; a gradient criterion scores with the seed's snapshot for
 * `thr`, and its pruning.json then gets the loop and the calibration batch, as a prune that ran
 * its own loop records them. Returns the record and Diff-Pruning's T'.
 */
function pruneFor(o: StudyOptions, paths: StudyPaths, seed: number, method: string, ratio: number, thr: number, out: string): { record: PruningRecord; tPrime: number | null } {
  const criterion = criterionNamed(method === SCRATCH ? "reinit" : method);
  if (criterion.gradients === null) return { record: pruneModelFolder({ model: o.model, seed, method: criterion, ratio, thr, out }), tPrime: null };
  const key = gradientKey(method, thr);
  const loop = readGradientReport(paths, seed)?.[key];
  if (!loop) throw new Error(`${gradientFiles(paths, seed).report} has no loop for ${key}; remove the seed's gradients folder to run it again`);
  const pruned = pruneModelFolder({ model: o.model, seed, method: storedGradients(criterion, gradientFiles(paths, seed).snapshot(key)), ratio, thr, out });
  const record: PruningRecord = {
    ...pruned,
    calibration: { source: paths.calibration(seed), batch: o.calibBatch },
    gradients: { thr: loop.thr, losses: loop.losses, tPrime: loop.t_prime, timesteps: loop.timesteps },
  };
  writePruningRecord(out, record);
  return { record, tPrime: method === "diff-pruning" ? loop.t_prime : null };
}

function measurePretrained(o: StudyOptions, paths: StudyPaths, onStep: (done: number, total: number) => void): void {
  withPipeline(o.model, ({ model, scheduler }) => {
    if (!existsSync(paths.pretrainedSamples)) {
      const samples = sampleShared(o, paths, model, scheduler, o.numSamples, onStep);
      writeGrid(join(paths.pretrained, "grid.png"), samples);
      // the grid the pruned models' (of the first consistencySamples) stand beside
      torch.tidy(() => writeGrid(join(paths.pretrained, "grid-prefinetune.png"), samples.narrow(0, 0, Math.min(o.consistencySamples, samples.shape[0]!))));
      saveFile({ samples }, paths.pretrainedSamples);
      samples.dispose();
    }
    const samples = pretrainedSamples(paths, o.numSamples);
    const heldout = loadHeldout(paths);
    try {
      const result: PretrainedResult = {
        params: model.numParameters(),
        macs: countOpsAndParams(model, unetForward(model)).macs,
        band_edges: bandEdges(scheduler.numTrainTimesteps, o.bands),
        band_losses: bandLosses(model, scheduler, heldout),
        ...sampleQuality(o, paths.realFeatures, model, samples),
      };
      writeJsonAtomic(paths.pretrainedMetrics, result);
    } finally {
      torch.dispose([samples, heldout.images, heldout.noise, heldout.timesteps]);
    }
  });
}

/** SSIM of a model folder's samples against the pretrained ones, on the first consistencySamples of the noise. */
function consistencyOf(o: StudyOptions, paths: StudyPaths, dir: string, grid: string | null, onStep?: (done: number, total: number) => void): { ssim: number; perImage: number[]; params: number; bands: number[] | null } {
  return withPipeline(dir, ({ model, scheduler }) => {
    const samples = sampleShared(o, paths, model, scheduler, o.consistencySamples, onStep);
    const reference = pretrainedSamples(paths, o.consistencySamples);
    try {
      if (grid) writeGrid(grid, samples);
      const c = compareSamples(samples, reference);
      let bands: number[] | null = null;
      if (grid) {
        const heldout = loadHeldout(paths);
        try {
          bands = bandLosses(model, scheduler, heldout);
        } finally {
          torch.dispose([heldout.images, heldout.noise, heldout.timesteps]);
        }
      }
      return { ssim: c.ssim, perImage: c.perImage, params: model.numParameters(), bands };
    } finally {
      torch.dispose([samples, reference]);
    }
  });
}

function measurePrefinetune(o: StudyOptions, paths: StudyPaths, seed: number, method: string, onStep: (done: number, total: number) => void): void {
  const record = readPruningRecord(paths.pruned(seed, method))!;
  const c = consistencyOf(o, paths, paths.pruned(seed, method), join(paths.method(seed, method), "grid.png"), onStep);
  const tPrime = method === "diff-pruning" ? record.gradients!.tPrime : null;
  const result: PrefinetuneResult = { params: c.params, macs: record.macs.after, t_prime: tPrime, ssim: c.ssim, ssim_per_image: c.perImage, band_losses: c.bands! };
  writeJsonAtomic(paths.prefinetune(seed, method), result);
}

/** One sweep point: prune into a scratch folder, measure SSIM, keep the figures, remove the model. */
function sweepPoint(o: StudyOptions, paths: StudyPaths, seed: number, method: string, ratio: number, thr: number, file: string, name: string, hooks: StudyHooks): void {
  const dir = paths.sweepModel(seed, name);
  rmSync(dir, { recursive: true, force: true }); // a killed earlier attempt's model
  const { record, tPrime } = pruneFor(o, paths, seed, method, ratio, thr, dir);
  try {
    const c = consistencyOf(o, paths, dir, null, (d, t) => hooks.onProgress?.(`sample ${name}`, d, t));
    const point: SweepPoint = { method, ratio, thr: method === "diff-pruning" ? thr : null, params: c.params, macs: record.macs.after, t_prime: tPrime, ssim: c.ssim };
    writeJsonAtomic(file, point);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Fine-tunes the pruned model to budget `b`'s steps and keeps a copy of the model. The budgets of
 * a model share one run: the lr is constant, so training to the larger budget continues the run
 * from the smaller one's checkpoint, which gives the same steps as a run started afresh.
 */
function finetuneTo(o: StudyOptions, paths: StudyPaths, seed: number, method: string, budget: number, hooks: StudyHooks): void {
  const run = paths.finetune(seed, method);
  const label = `fine-tune ${method}`;
  const steps = budgetSteps(o, budget);
  const done = finetune({
    model: paths.pruned(seed, method),
    data: o.data,
    out: run,
    resume: true,
    train: recipe(o, seed, steps),
    record: { study: { seed, method, budget } },
    ...(hooks.onProgress ? { onStep: (info, total) => hooks.onProgress!(label, info.step, total) } : {}),
    ...(hooks.onMessage ? { onEvent: (text) => hooks.onMessage!(`  ${text}`) } : {}),
  });
  // A run already past this budget (its snapshot removed by hand) cannot give the model at this step.
  if (done.steps !== steps) throw new Error(`${run} has trained ${done.steps} steps, past budget ${budget} (${steps} steps); remove that folder (and its budget-* folders) to fine-tune ${method} again`);
  writeFolderAtomic(join(paths.budget(seed, method, budget), "model"), (dir) => cpSync(runModelDir(run), dir, { recursive: true }));
}

function measureFinetuned(o: StudyOptions, paths: StudyPaths, seed: number, method: string, budget: number, onStep: (done: number, total: number) => void): void {
  const dir = paths.budget(seed, method, budget);
  const record = readPruningRecord(paths.pruned(seed, method))!;
  withPipeline(join(dir, "model"), ({ model, scheduler }) => {
    const samples = sampleShared(o, paths, model, scheduler, o.numSamples, onStep);
    const reference = pretrainedSamples(paths, o.numSamples);
    try {
      writeGrid(join(dir, "grid.png"), samples);
      const c = compareSamples(samples, reference);
      const result: FinetunedResult = {
        budget,
        steps: budgetSteps(o, budget),
        params: model.numParameters(),
        macs: record.macs.after,
        ssim: c.ssim,
        ssim_per_image: c.perImage,
        ...sampleQuality(o, paths.realFeatures, model, samples),
      };
      writeJsonAtomic(join(dir, "metrics.json"), result);
    } finally {
      torch.dispose([samples, reference]);
    }
  });
}
