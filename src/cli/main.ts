#!/usr/bin/env node
// The `diffprune` command. Commands are thin: parse, call the library, print.
import { Command } from "commander";
import { positiveInt } from "./args.js";
import { registerPlot } from "./plot.js";
import { registerSample } from "./sample.js";
import { engineSmoke } from "./smoke.js";
import { registerTrain } from "./train.js";

const program = new Command("diffprune")
  .description("Diff-Pruning: structural pruning for diffusion models, on libtorch")
  .showHelpAfterError("(add --help for usage)");

program
  .command("demo")
  .description("run the end-to-end job (for now: the engine smoke job, a conv net trained on epsilon-prediction)")
  .option("--steps <n>", "training steps", positiveInt, 300)
  .option("--seed <n>", "random seed", (v) => Number(v), 0)
  .action((opts: { steps: number; seed: number }) => {
    const start = Date.now();
    console.log(`diffprune demo: the pruning workflow is not built yet; running the engine smoke job (${opts.steps} steps)`);
    const losses = engineSmoke({
      steps: opts.steps,
      seed: opts.seed,
      onLog: (step, loss) => {
        const rate = step / ((Date.now() - start) / 1000);
        console.log(`step ${String(step).padStart(5)}/${opts.steps}  loss ${loss.toFixed(4)}  ${rate.toFixed(1)} it/s`);
      },
    });
    const head = losses.slice(0, 25).reduce((a, b) => a + b, 0) / Math.min(25, losses.length);
    const tail = losses.slice(-25).reduce((a, b) => a + b, 0) / Math.min(25, losses.length);
    console.log(`loss ${head.toFixed(4)} (first 25 steps) -> ${tail.toFixed(4)} (last 25)`);
  });

registerTrain(program);
registerSample(program);
registerPlot(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`diffprune: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
