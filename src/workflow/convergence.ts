// Whether a training run has converged: every snapshot of the run (train --snapshot-every)
// sampled from the same noise and scored (FID and KID of the classifier's features against a
// real subset of the same size), beside the real-vs-real floor, and how much FID still improved
// over the last quarter of training. Each snapshot's score is kept in the run folder, so a later
// call (more snapshots, an interrupted one) scores only what is new.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/index.js";
import { disposePipeline, loadPipeline, stepName, type SkipType } from "../diffusion/index.js";
import { evaluationSamples } from "../metrics/index.js";
import { lineChart } from "../report/index.js";
import { qualityApplies, sampleQuality, writeRealFeatures, type RealOptions } from "./study-measure.js";
import type { QualityResult } from "./study-folder.js";

export interface ConvergenceOptions extends RealOptions {
  /** The run folder (its snapshots/step-N). */
  run: string;
  /** DDIM steps (eta 0). */
  steps: number;
  skip: SkipType;
  batchSize: number;
  /** Score only the snapshots at multiples of this many steps, and the last one (default: all). */
  every?: number;
}

export interface ConvergencePoint extends QualityResult {
  step: number;
}

export interface ConvergenceResult {
  options: ConvergenceOptions;
  points: ConvergencePoint[];
  /** Two disjoint real subsets of numSamples against each other: what a perfect model scores. */
  floor: QualityResult;
  /** FID at the snapshot closest below 3/4 of the last step, and at the last: (from - to) / from. */
  lastQuarter: { fromStep: number; toStep: number; fidFrom: number; fidTo: number; improvement: number } | null;
  /** The issue-18 criterion: FID improved by under 5% over the last quarter (null: too few snapshots). */
  converged: boolean | null;
}

export interface ConvergenceHooks {
  /** A snapshot begins being scored (or is read back: `cached`). */
  onSnapshot?: (step: number, index: number, total: number, cached: boolean) => void;
  onProgress?: (label: string, done: number, total: number) => void;
}

/** Improvement over the last quarter below this counts as converged. */
export const CONVERGED_BELOW = 0.05;

const SNAPSHOT = /^step-(\d+)$/;

export const convergencePaths = (run: string) => ({
  dir: join(run, "convergence"),
  realFeatures: join(run, "convergence", "real-features.safetensors"),
  floor: join(run, "convergence", "floor.json"),
  point: (step: number) => join(run, "convergence", `${stepName(step)}.json`),
  result: join(run, "convergence.json"),
  chart: join(run, "convergence.svg"),
});

/** The run's snapshots, by step; with `every`, those at its multiples and the last. */
export function runSnapshots(run: string, every = 1): { step: number; dir: string }[] {
  const dir = join(run, "snapshots");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .flatMap((name) => {
      const m = SNAPSHOT.exec(name);
      return m ? [{ step: Number(m[1]), dir: join(dir, name) }] : [];
    })
    .sort((a, b) => a.step - b.step)
    .filter((s, i, all) => s.step % every === 0 || i === all.length - 1);
}

/** FID at about 3/4 of the last step against the last: the share by which it still improved. */
export function lastQuarter(points: readonly ConvergencePoint[]): ConvergenceResult["lastQuarter"] {
  const scored = points.filter((p) => p.fid !== null);
  const last = scored[scored.length - 1];
  if (!last) return null;
  const from = scored.filter((p) => p.step <= 0.75 * last.step).pop();
  if (!from || from === last) return null;
  return { fromStep: from.step, toStep: last.step, fidFrom: from.fid!, fidTo: last.fid!, improvement: (from.fid! - last.fid!) / from.fid! };
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, "utf8")) as T;

export function convergence(o: ConvergenceOptions, hooks: ConvergenceHooks = {}): ConvergenceResult {
  const snapshots = runSnapshots(o.run, o.every);
  if (snapshots.length === 0) throw new Error(`${o.run} has no snapshots (snapshots/step-N): train with --snapshot-every N`);
  const paths = convergencePaths(o.run);
  const saved = existsSync(paths.result) ? readJson<ConvergenceResult>(paths.result).options : null;
  const changed = saved ? (Object.keys(o) as (keyof ConvergenceOptions)[]).filter((k) => k !== "run" && k !== "every" && JSON.stringify(saved[k]) !== JSON.stringify(o[k])) : [];
  if (changed.length > 0) throw new Error(`${paths.dir} holds scores made with other settings (${changed.join(", ")}); use the same ones, or delete it to start again`);
  if (!existsSync(paths.floor)) writeJsonAtomic(paths.floor, writeRealFeatures(o, paths.realFeatures, (d, t) => hooks.onProgress?.("real features", d, t)));
  const floor = readJson<QualityResult>(paths.floor);
  const points = snapshots.map(({ step, dir }, i) => {
    const file = paths.point(step);
    hooks.onSnapshot?.(step, i, snapshots.length, existsSync(file));
    if (!existsSync(file)) writeJsonAtomic(file, { step, ...score(o, dir, paths.realFeatures, hooks) });
    return readJson<ConvergencePoint>(file);
  });
  const quarter = lastQuarter(points);
  const result: ConvergenceResult = { options: o, points, floor, lastQuarter: quarter, converged: quarter ? quarter.improvement < CONVERGED_BELOW : null };
  writeJsonAtomic(paths.result, result);
  writeFileAtomic(paths.chart, convergenceChart(result));
  return result;
}

/** One snapshot's samples from the fixed noise (noiseSeed), scored against the real subset. */
function score(o: ConvergenceOptions, dir: string, realFeatures: string, hooks: ConvergenceHooks): QualityResult {
  const pipeline = loadPipeline({ model: dir }, { latent: true });
  try {
    const { model, autoencoder, scheduler } = pipeline;
    if (autoencoder || !qualityApplies(model)) throw new Error(`${dir}: the classifier scores 1x32x32 images of a pixel-space model; this one makes others`);
    const c = model.config;
    torch.manualSeed(o.noiseSeed);
    return torch.tidy(() => {
      const noise = torch.randn([o.numSamples, c.in_channels, c.sample_size, c.sample_size]);
      const samples = evaluationSamples(model, null, scheduler, noise, { steps: o.steps, skip: o.skip, batchSize: o.batchSize, onStep: (d, t) => hooks.onProgress?.("sample", d, t) });
      return sampleQuality(o, realFeatures, model, samples);
    });
  } finally {
    disposePipeline(pipeline);
  }
}

/** FID over training steps, with the real-vs-real floor as a line. */
export function convergenceChart(r: ConvergenceResult): string {
  const points = r.points.flatMap((p): [number, number][] => (p.fid === null ? [] : [[p.step, p.fid]]));
  return lineChart([{ name: `FID, ${r.options.numSamples} samples`, points }], {
    title: "FID over training (classifier features)",
    xLabel: "step",
    yLabel: "FID",
    ...(r.floor.fid !== null ? { hLines: [{ y: r.floor.fid, label: "real vs real" }] } : {}),
    ...(r.lastQuarter ? { vLines: [{ x: r.lastQuarter.fromStep, label: "last quarter" }] } : {}),
  });
}
