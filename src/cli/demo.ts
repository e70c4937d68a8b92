// `diffprune demo`, README's first command. Until the pruning workflow exists it shows what is
// built: the engine's smoke job (a conv net trained on epsilon-prediction) and samples from the
// shipped Fashion-MNIST model.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { packageRoot } from "../io/index.js";
import { nonNegativeInt, positiveInt } from "./args.js";
import { sampleAction } from "./sample.js";
import { engineSmoke } from "./smoke.js";

/** The shipped model. */
export const EMBEDDED_MODEL = join(packageRoot(), "models", "fashion-mnist");

interface DemoArgs {
  steps: number;
  seed: number;
  out: string;
}

function demo(args: DemoArgs): void {
  console.log(`diffprune demo: the pruning workflow is not built yet; this runs the engine smoke job and samples the shipped model`);
  const start = Date.now();
  const losses = engineSmoke({
    steps: args.steps,
    seed: args.seed,
    onLog: (step, loss) => console.log(`smoke step ${String(step).padStart(4)}/${args.steps}  loss ${loss.toFixed(4)}  ${(step / ((Date.now() - start) / 1000)).toFixed(1)} it/s`),
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`smoke loss ${mean(losses.slice(0, 25)).toFixed(4)} (first 25 steps) -> ${mean(losses.slice(-25)).toFixed(4)} (last 25)`);
  if (!existsSync(EMBEDDED_MODEL)) {
    console.log(`no shipped model at ${EMBEDDED_MODEL}; skipping the samples`);
    return;
  }
  sampleAction({ model: EMBEDDED_MODEL, out: args.out, scheduler: "ddim", steps: 50, eta: 0, skip: "uniform", num: 16, batchSize: 16, seed: args.seed });
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("run the end-to-end job (for now: the engine smoke job and samples of the shipped model)")
    .option("--steps <n>", "smoke training steps", positiveInt, 300)
    .option("--seed <n>", "random seed", nonNegativeInt, 0)
    .option("--out <dir>", "where the samples go", join("runs", "demo"))
    .action((args: DemoArgs) => demo(args));
}
