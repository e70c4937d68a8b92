// `diffprune plot`: a training log (log.jsonl) as an SVG loss curve.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { writeFileAtomic } from "../io/index.js";
import { checkInputFiles, checkOutputs, writeFileMakingDirs } from "../io/paths.js";
import { lineChart } from "../report/index.js";

interface LogLine {
  step: number;
  loss: number;
}

/** (step, loss) of every entry of a training log (log.jsonl). */
export function lossPoints(logFile: string): [number, number][] {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch (err) {
    throw new Error(`cannot read the log ${logFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; give a run's log.jsonl`);
  }
  const lines = text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l, i) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        throw new Error(`${logFile}:${i + 1}: not a JSON line`);
      }
    });
  return lines.filter((l) => typeof l.step === "number" && typeof l.loss === "number").map((l) => [l.step, l.loss]);
}

export function lossCurve(logFile: string, title = "training loss"): string {
  const points = lossPoints(logFile);
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
