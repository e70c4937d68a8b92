// The gradient criteria's loops, run once per seed instead of once per prune. Diff-Pruning's
// gradients at threshold thr are those of the loop t = 0, 1, ... up to its T' on the seed's fixed
// calibration batch and noise, and Taylor's are the same loop over every timestep; the pruning
// ratio does not enter them. So one loop over every timestep, with the gradients saved when each
// threshold's stopping rule fires (after that step's backward, as ddpm_prune.py does it), gives
// every prune of the seed: the main ones, the thr sweep and the ratio sweep. A prune then reads
// its snapshot through storedGradients, a criterion that sets the weights' gradients and scores
// as the criterion it wraps.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { loadFile, saveFile, writeJsonAtomic } from "../io/index.js";
import { makeDirs } from "../io/paths.js";
import { disposePipeline, loadPipeline } from "../diffusion/index.js";
import { accumulateGradients, loadCalibration, type Criterion } from "../pruning/index.js";
import type { StoredGradients } from "./record.js";
import type { StudyOptions, StudyPaths } from "./study-folder.js";

const REPORT = "gradients.json";

/** The snapshot of a criterion ("taylor", or "diff-pruning" at `thr`). */
export const gradientKey = (method: string, thr: number): string => (method === "diff-pruning" ? `diff-pruning-thr-${thr}` : method);

export const gradientFiles = (paths: StudyPaths, seed: number) => {
  const dir = join(paths.seed(seed), "gradients");
  return { dir, report: join(dir, REPORT), snapshot: (key: string) => join(dir, `${key}.safetensors`) };
};

/** What each snapshot's loop did (losses up to its T'), by key; null before the seed's loop ran. */
export function readGradientReport(paths: StudyPaths, seed: number): Record<string, StoredGradients> | null {
  const file = gradientFiles(paths, seed).report;
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, StoredGradients>) : null;
}

/**
 * Runs the seed's loop and writes a snapshot per key: "taylor" when Taylor is compared, and
 * "diff-pruning-thr-<thr>" for every threshold in `thresholds`. The loop stops at the smallest
 * threshold's T' when Taylor is not needed.
 */
export function writeGradientSnapshots(o: StudyOptions, paths: StudyPaths, seed: number, thresholds: number[], taylor: boolean, onStep?: (t: number, total: number) => void): void {
  const files = gradientFiles(paths, seed);
  makeDirs(files.dir);
  const pipeline = loadPipeline({ model: o.model });
  const { model, scheduler } = pipeline;
  const calibration = loadCalibration(paths.calibration(seed), model.config);
  const params = [...model.namedParameters()];
  const snapshot = (key: string) => torch.tidy(() => saveFile(new Map(params.map(([name, p]) => [name, p.grad!.clone()])), files.snapshot(key)));
  const report: Record<string, StoredGradients> = {};
  const pending = [...new Set(thresholds)].sort((a, b) => b - a); // the largest stops first
  const losses: number[] = [];
  let max = 0;
  try {
    const loop = accumulateGradients(model, {
      ...calibration,
      scheduler,
      thr: taylor || pending.length === 0 ? null : pending[pending.length - 1]!,
      onStep: (t, loss, total) => {
        losses.push(loss);
        max = Math.max(max, loss);
        // accumulateGradients' rule: stop after the first t whose loss < thr x the largest so far
        while (pending.length > 0 && loss < pending[0]! * max) {
          const thr = pending.shift()!;
          snapshot(gradientKey("diff-pruning", thr));
          report[gradientKey("diff-pruning", thr)] = { thr, losses: [...losses], t_prime: t, timesteps: total };
        }
        onStep?.(t + 1, total);
      },
    });
    // thresholds the loss never fell below (thr 0 among them) ran every timestep, as Taylor does
    for (const thr of pending) {
      snapshot(gradientKey("diff-pruning", thr));
      report[gradientKey("diff-pruning", thr)] = { thr, losses: [...losses], t_prime: loop.tPrime, timesteps: loop.timesteps };
    }
    if (taylor) {
      snapshot("taylor");
      report.taylor = { thr: null, losses: [...losses], t_prime: loop.tPrime, timesteps: loop.timesteps };
    }
    writeJsonAtomic(files.report, report);
  } finally {
    for (const [, p] of params) p.grad = null;
    torch.dispose([calibration.images, calibration.noise, ...(calibration.labels ? [calibration.labels] : [])]);
    disposePipeline(pipeline);
  }
}

/**
 * `base` scoring with the gradients of a snapshot file: it computes none itself (gradients null,
 * so a prune needs no calibration batch), and sets the model's gradients from the file when the
 * pruner first scores, on the unpruned model, where the loop would have run.
 */
export function storedGradients(base: Criterion, file: string): Criterion {
  let loaded = false;
  return {
    name: base.name,
    description: base.description,
    gradients: null,
    score(group, context) {
      if (!loaded) {
        const grads = loadFile(file);
        for (const [name, p] of context.graph.module.namedParameters()) {
          const g = grads.get(name);
          if (!g || g.shape.join() !== p.shape.join()) throw new Error(`${file}: no gradient of ${name}'s shape [${p.shape.join(", ")}]; remove the seed's gradients folder to run its loop again`);
          p.grad = g;
        }
        torch.dispose([...grads.values()]);
        loaded = true;
      }
      return base.score(group, context);
    },
  };
}
