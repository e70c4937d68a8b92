// `diffprune plot`: a training log (log.jsonl) as an SVG loss curve.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { writeFileAtomic } from "../io/index.js";
import { checkInputFiles, checkOutputs, writeFileMakingDirs } from "../io/paths.js";
import { readLossCurve } from "../diffusion/index.js";
import { lineChart } from "../report/index.js";

export function lossCurve(logFile: string, title = "training loss"): string {
  const points = existsSync(logFile) ? readLossCurve(logFile) : [];
  if (points.length === 0) throw new Error(`${logFile} has no entries yet`);
  return lineChart([{ name: "loss", points }], { title, xLabel: "step", yLabel: "epsilon-MSE", logY: true });
}

export function registerPlot(program: Command): void {
  program
    .command("plot")
    .description("plot a training log (log.jsonl) as an SVG loss curve")
    .requiredOption("--log <file>", "the run's log.jsonl")
    .requiredOption("--out <file>", "SVG file to write")
    .option("--title <text>", "chart title", "training loss")
    .action((args: { log: string; out: string; title: string }) => {
      checkOutputs([{ flag: "--out", path: args.out, kind: "file" }], [{ flag: "--log", path: args.log }]);
      checkInputFiles([{ flag: "--log", path: args.log }]);
      const svg = lossCurve(args.log, args.title);
      writeFileMakingDirs(args.out, (path) => writeFileAtomic(path, svg));
      console.log(`wrote ${args.out}`);
    });
}
