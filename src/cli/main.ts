#!/usr/bin/env node
// The `diffprune` command. Commands are thin: parse, call the library, print.
import { Command } from "commander";
import { registerCount } from "./count.js";
import { registerDemo } from "./demo.js";
import { registerEval } from "./eval.js";
import { registerPlot } from "./plot.js";
import { registerPrune } from "./prune.js";
import { registerSample } from "./sample.js";
import { registerTrain } from "./train.js";
import { registerTrainClassifier } from "./train-classifier.js";

const program = new Command("diffprune")
  .description("Diff-Pruning: structural pruning for diffusion models, on libtorch")
  .showHelpAfterError("(add --help for usage)");

registerDemo(program);
registerTrain(program);
registerSample(program);
registerPlot(program);
registerTrainClassifier(program);
registerEval(program);
registerPrune(program);
registerCount(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`diffprune: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
