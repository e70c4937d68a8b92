#!/usr/bin/env node
// The `diffprune` command. Commands are thin: parse, call the library, print.
import { Command } from "commander";
import { cliMessage } from "./args.js";
import { registerCount } from "./count.js";
import { registerDemo } from "./demo.js";
import { registerEval } from "./eval.js";
import { registerPlot } from "./plot.js";
import { registerPrune } from "./prune.js";
import { registerSample } from "./sample.js";
import { registerTrain } from "./train.js";
import { registerTrainClassifier } from "./train-classifier.js";

// Every error is one line on stderr: commander's usage errors carry the help hint on the same line.
const program = new Command("diffprune")
  .description("Diff-Pruning: structural pruning for diffusion models, on libtorch")
  .configureOutput({ outputError: (text, write) => write(`diffprune: ${text.replace(/^error: /, "").trim()} (add --help for usage)\n`) });

registerDemo(program);
registerTrain(program);
registerSample(program);
registerPlot(program);
registerTrainClassifier(program);
registerEval(program);
registerPrune(program);
registerCount(program);

/** An error as one line: libtorch appends its C++ backtrace on further lines, which say nothing to a user. */
function oneLine(err: unknown): string {
  const text = cliMessage(err);
  const lines = text.split("\n").map((l) => l.trim());
  const end = lines.findIndex((l) => /^(Exception raised from|frame #\d+)/.test(l));
  return lines.slice(0, end < 0 ? undefined : end).filter((l) => l !== "").join(" ");
}

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`diffprune: ${oneLine(err)}`);
  process.exit(1);
});
