#!/usr/bin/env node
// The `diffprune` command. Commands are thin: parse, call the library, print.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { packageRoot } from "../io/index.js";
import { cliMessage } from "./args.js";
import { registerCount } from "./count.js";
import { registerDemo } from "./demo.js";
import { registerEval } from "./eval.js";
import { registerExport } from "./export.js";
import { registerPlot } from "./plot.js";
import { registerPrune } from "./prune.js";
import { registerSample } from "./sample.js";
import { registerStudy } from "./study.js";
import { registerConvergence } from "./convergence.js";
import { registerTrain } from "./train.js";
import { registerTrainClassifier } from "./train-classifier.js";
import { registerTrainAutoencoder } from "./train-autoencoder.js";

const EXIT_CODES = `
Exit codes: 0 done; 1 the command failed (an unreadable input, options the command refuses, a run
that diverged); 2 the command line is wrong (an unknown command or option, a missing or malformed
value).`;

const { version } = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string };

// Every error is one line on stderr: commander's usage errors carry the help hint on the same line.
// exitOverride (inherited by every command) turns commander's exits into errors, so a usage error
// exits with 2 and help and --version with 0.
const program = new Command("diffprune")
  .description("Diff-Pruning: structural pruning for diffusion models, on libtorch")
  .version(version, "-V, --version", "print diffprune's version")
  .configureOutput({ outputError: (text, write) => write(`diffprune: ${text.replace(/^error: /, "").trim()} (add --help for usage)\n`) })
  .exitOverride();

registerDemo(program);
registerStudy(program);
registerConvergence(program);
registerTrain(program);
registerSample(program);
registerPlot(program);
registerTrainClassifier(program);
registerTrainAutoencoder(program);
registerEval(program);
registerPrune(program);
registerCount(program);
registerExport(program);
for (const command of [program, ...program.commands]) command.addHelpText("after", EXIT_CODES);

/** An error as one line: libtorch appends its C++ backtrace on further lines, which say nothing to a user. */
function oneLine(err: unknown): string {
  const text = cliMessage(err);
  const lines = text.split("\n").map((l) => l.trim());
  const end = lines.findIndex((l) => /^(Exception raised from|frame #\d+)/.test(l));
  return lines.slice(0, end < 0 ? undefined : end).filter((l) => l !== "").join(" ");
}

/** A worker of a group names its rank, since every worker's errors reach the same terminal. */
const rank = process.env.RANK ?? process.env.SLURM_PROCID;
const who = Number(process.env.WORLD_SIZE ?? process.env.SLURM_NTASKS) > 1 && rank !== undefined ? ` (rank ${rank})` : "";

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2); // commander printed it
  console.error(`diffprune${who}: ${oneLine(err)}`);
  process.exit(1);
});
