// `diffprune convergence`: FID (and KID) of every snapshot of a training run, beside the
// real-vs-real floor, and whether the last quarter of training still improved FID.
import type { Command } from "commander";
import { SKIP_TYPES, type SkipType } from "../diffusion/index.js";
import { CONVERGED_BELOW, convergence, convergencePaths, type ConvergenceOptions, type ConvergenceResult } from "../workflow/index.js";
import { addKidOptions, nonNegativeInt, oneOf, positiveInt, SKIP_HELP } from "./args.js";
import { Progress } from "./progress.js";

const fmt = (x: number | null, digits = 2) => (x === null ? "-" : x.toFixed(digits));

/** The curve as a table, and the verdict. */
export function formatConvergence(r: ConvergenceResult): string {
  const rows = r.points.map((p) => `  step ${String(p.step).padStart(7)}  FID ${fmt(p.fid).padStart(8)}  KID ${fmt(p.kid, 3).padStart(9)}`);
  const floor = `  real vs real   FID ${fmt(r.floor.fid).padStart(8)}  KID ${fmt(r.floor.kid, 3).padStart(9)}`;
  const q = r.lastQuarter;
  const verdict = q
    ? `last quarter (steps ${q.fromStep} -> ${q.toStep}): FID ${q.fidFrom.toFixed(2)} -> ${q.fidTo.toFixed(2)}, ${(100 * q.improvement).toFixed(1)}% better: ${r.converged ? `converged (under ${100 * CONVERGED_BELOW}%)` : "still improving"}`
    : "too few snapshots to judge the last quarter";
  return [...rows, floor, verdict].join("\n");
}

export function registerConvergence(program: Command): void {
  addKidOptions(
    program
      .command("convergence")
      .description("FID/KID of every snapshot of a training run (train --snapshot-every) beside the real-vs-real floor: has it converged?")
      .requiredOption("--run <dir>", "the training run folder (with snapshots/step-N)")
      .option("--data <spec>", "the real images (the reference subset and the floor's other subset)", "fashion-mnist")
      .option("--num <n>", "samples per snapshot, and real images per subset", positiveInt, 2000)
      .option("--steps <n>", "DDIM steps (eta 0)", positiveInt, 100)
      .option("--skip <type>", SKIP_HELP, oneOf<SkipType>(...SKIP_TYPES), "uniform")
      .option("--seed <n>", "seed of the sampling noise and of the real subsets' order", nonNegativeInt, 0)
      .option("--batch-size <n>", "images denoised at once", positiveInt, 64)
      .option("--every <steps>", "score only the snapshots at multiples of this many steps, and the last (scores made before are kept)", positiveInt)
  )
    .option("--json", "print the result as JSON")
    .action((args: { run: string; data: string; num: number; steps: number; skip: SkipType; seed: number; batchSize: number; every?: number; kidSubsets: number; kidSubsetSize: number; json?: boolean }) => {
      const options: ConvergenceOptions = {
        run: args.run,
        data: args.data,
        numSamples: args.num,
        noiseSeed: args.seed,
        kidSubsets: args.kidSubsets,
        kidSubsetSize: args.kidSubsetSize,
        steps: args.steps,
        skip: args.skip,
        batchSize: args.batchSize,
        ...(args.every ? { every: args.every } : {}),
      };
      // one bar per stage of work, a new one when a stage starts over (the next snapshot's samples)
      let bar: { label: string; progress: Progress; done: number } | null = null;
      const result = convergence(options, {
        onSnapshot: (step, i, total, cached) => console.error(`snapshot ${i + 1}/${total}: step ${step}${cached ? " (scored before)" : ""}`),
        onProgress: (label, done, total) => {
          if (!bar || bar.label !== label || done < bar.done) bar = { label, progress: new Progress(label, total), done };
          bar.done = done;
          bar.progress.update(done);
        },
      });
      if (args.json) console.log(JSON.stringify(result, null, 2));
      else console.log(`${formatConvergence(result)}\ncurve in ${convergencePaths(args.run).chart}`);
    });
}
