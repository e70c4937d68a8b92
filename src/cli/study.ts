// `diffprune study`: issue 18's study (criteria over seeds, before and after fine-tuning, with
// paired statistics) into a resumable run folder with study.json and report.html.
import { join } from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { OptionError } from "../io/index.js";
import { SKIP_TYPES, type SkipType } from "../diffusion/index.js";
import { baseTraining, runStudy, type StudyOptions, type StudyResult } from "../workflow/index.js";
import { addKidOptions, fraction, learningRate, nonNegativeInt, oneOf, positiveInt, SKIP_HELP } from "./args.js";
import { EMBEDDED_MODEL } from "./demo.js";
import { formatTime, Progress } from "./progress.js";

const DEFAULTS = {
  seeds: "0,1,2,3,4",
  methods: "diff-pruning,taylor,magnitude,random",
  thrSweep: "0,0.01,0.02,0.05,0.1,0.2,0.5",
  ratioSweep: "0.1,0.2,0.3,0.4,0.5",
  budgets: "0.1,0.2",
};

/** The lists, given as comma-separated text. */
type ListOption = "seeds" | "methods" | "thrSweep" | "ratioSweep" | "budgets";
/** Options with a default found at run time (the base run's, the data's test split). */
type DerivedOption = "model" | "heldoutData" | "baseSteps" | "batchSize";

/** What commander parses: the study's options, the lists as text, the derived ones optional. */
type StudyArgs = Omit<StudyOptions, ListOption | DerivedOption> & Record<ListOption, string> & Partial<Pick<StudyOptions, DerivedOption>> & { json?: boolean };

/** A comma-separated list of numbers, each checked by `parse` (an empty list is allowed: a sweep left out). */
function listOf(parse: (value: string) => number, flag: string): (value: string) => number[] {
  return (value) => {
    const items = value.split(",").map((v) => v.trim()).filter((v) => v !== "");
    try {
      return items.map(parse);
    } catch (err) {
      throw new InvalidArgumentError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

const names = (value: string): string[] => value.split(",").map((m) => m.trim()).filter(Boolean);

/** The study's options from the command line; the base model's steps and batch come from its run when not given. */
export function studyOptions(args: StudyArgs): StudyOptions {
  const model = args.model ?? EMBEDDED_MODEL;
  const base = baseTraining(model);
  const baseSteps = args.baseSteps ?? base.steps;
  if (baseSteps === null)
    throw new OptionError((n) => `${n("model")} ${model} has no run log (log.jsonl beside it or in the run folder above it) to read its training steps from: give ${n("baseSteps")}`);
  const ratios = (v: string, flag: string) => listOf(fraction(), flag)(v);
  const samplingSteps = args.samplingSteps;
  if (samplingSteps < 2 && (args.skip === "uniform" || args.skip === "quad"))
    throw new OptionError((n) => `${n("skip")} ${args.skip} (the paper's sampler) needs ${n("samplingSteps")} 2 or more; for one step use ${n("skip")} leading`);
  return {
    model,
    data: args.data,
    // Fashion-MNIST's test split is held out from training; another dataset's spec is used as given.
    heldoutData: args.heldoutData ?? (args.data === "fashion-mnist" ? "fashion-mnist:test" : args.data),
    out: args.out,
    seeds: listOf(nonNegativeInt, "--seeds")(args.seeds),
    methods: names(args.methods),
    scratch: args.scratch,
    ratio: args.ratio,
    thr: args.thr,
    calibBatch: args.calibBatch,
    thrSweep: listOf(fraction(true), "--thr-sweep")(args.thrSweep),
    ratioSweep: ratios(args.ratioSweep, "--ratio-sweep"),
    budgets: listOf(fraction(true), "--budgets")(args.budgets).filter((b) => b > 0),
    baseSteps,
    batchSize: args.batchSize ?? base.batchSize ?? 64,
    lr: args.lr,
    numSamples: args.numSamples,
    consistencySamples: Math.min(args.consistencySamples, args.numSamples),
    samplingSteps,
    skip: args.skip,
    heldoutBatch: args.heldoutBatch,
    bands: args.bands,
    kidSubsets: args.kidSubsets,
    kidSubsetSize: args.kidSubsetSize,
    noiseSeed: args.noiseSeed,
  };
}

const interval = (s: { mean: number; ci95: [number, number] }, digits: number) => `${s.mean.toFixed(digits)} [${s.ci95[0].toFixed(digits)}, ${s.ci95[1].toFixed(digits)}]`;

/** The headline figures as text lines. */
export function formatStudy(r: StudyResult): string {
  const lines: string[] = ["before fine-tuning: SSIM against the pretrained samples (mean [95% CI] over seeds)"];
  for (const [m, p] of Object.entries(r.prefinetune)) lines.push(`  ${m.padEnd(14)} ${interval(p.ssim, 4)}${p.t_prime ? `  T' ${p.t_prime.mean.toFixed(1)}` : ""}`);
  if (r.paired) for (const [m, d] of Object.entries(r.paired.prefinetune)) lines.push(`  ${r.paired.reference} - ${m}: ${interval(d.ssim, 4)}`);
  for (const { budget, steps } of r.budgets) {
    const row = r.finetuned[String(budget)] ?? {};
    if (Object.keys(row).length === 0) continue;
    lines.push(`after ${steps} fine-tuning steps (${budget}): FID, SSIM`);
    for (const [m, q] of Object.entries(row)) lines.push(`  ${m.padEnd(14)} ${q.fid ? interval(q.fid, 2) : "-"}  ${interval(q.ssim, 4)}`);
    for (const [m, d] of Object.entries(r.paired?.finetuned[String(budget)] ?? {})) lines.push(`  ${r.paired!.reference} - ${m}: FID ${d.fid ? interval(d.fid, 2) : "-"}, SSIM ${interval(d.ssim, 4)}`);
  }
  if (r.floor?.fid != null) lines.push(`real-vs-real floor: FID ${r.floor.fid.toFixed(2)}, KID ${r.floor.kid!.toExponential(2)}`);
  return lines.join("\n");
}

export function registerStudy(program: Command): void {
  addKidOptions(
    program
      .command("study")
      .description("the Diff-Pruning study: every criterion over seeds, before fine-tuning (SSIM, held-out loss, thr and ratio sweeps) and after fine-tuning budgets (FID, KID, SSIM), with paired differences; study.json, report.html")
      .option("--model <dir>", "the pretrained model folder (default: the shipped model)")
      .option("--data <spec>", "training data: calibration, fine-tuning, the real images of FID and KID", "fashion-mnist")
      .option("--heldout-data <spec>", "held-out images for the denoising loss (default: fashion-mnist:test for fashion-mnist, else --data)")
      .option("--out <dir>", "the run folder (an interrupted study continues there)", join("runs", "study"))
      .option("--seeds <list>", "seeds of the calibration draw, pruning and fine-tuning", DEFAULTS.seeds)
      .option("--methods <list>", "criteria compared", DEFAULTS.methods)
      .option("--no-scratch", "leave out the pruned architecture trained from scratch for each budget")
      .option("--ratio <r>", "pruning ratio per group", fraction(), 0.3)
      .option("--thr <x>", "Diff-Pruning's loss threshold", fraction(), 0.05)
      .option("--calib-batch <n>", "calibration images for the gradient criteria", positiveInt, 128)
      .option("--thr-sweep <list>", "Diff-Pruning's thresholds swept before fine-tuning (empty: none)", DEFAULTS.thrSweep)
      .option("--ratio-sweep <list>", "ratios swept for each criterion before fine-tuning (empty: none)", DEFAULTS.ratioSweep)
      .option("--budgets <list>", "fine-tuning budgets, fractions of the base model's training steps (empty: no fine-tuning)", DEFAULTS.budgets)
      .option("--base-steps <n>", "the base model's training steps (default: the last step of its run log)", positiveInt)
      .option("--batch-size <n>", "fine-tuning batch (default: the base run's, else 64)", positiveInt)
      .option("--lr <x>", "fine-tuning learning rate, constant (ddpm_train.py's 2e-4)", learningRate(), 2e-4)
      .option("--num-samples <n>", "samples per model for FID, KID and SSIM after fine-tuning", positiveInt, 2000)
      .option("--consistency-samples <n>", "samples per model for SSIM before fine-tuning and in the sweeps (the first of the same noise)", positiveInt, 256)
      .option("--sampling-steps <n>", "DDIM steps", positiveInt, 100)
      .option("--skip <type>", SKIP_HELP, oneOf<SkipType>(...SKIP_TYPES), "uniform")
      .option("--heldout-batch <n>", "held-out images of the denoising loss", positiveInt, 256)
      .option("--bands <n>", "timestep bands of the held-out loss", positiveInt, 10)
      .option("--noise-seed <n>", "seed of the sampling noise, the held-out batch and the real subsets (shared by all seeds)", nonNegativeInt, 0)
  )
    .option("--json", "print study.json when done; the stages go to stderr")
    .action((args: StudyArgs) => {
      const start = Date.now();
      const say = args.json ? console.error : console.log;
      const bars = new Map<string, Progress>();
      let skipped = 0;
      const flushSkipped = () => {
        if (skipped > 0) say(`(${skipped} stage${skipped > 1 ? "s" : ""} already done)`);
        skipped = 0;
      };
      const options = studyOptions(args);
      const result = runStudy(options, {
        onStage: ({ index, total, label, skipped: done, etaSeconds }) => {
          if (done) return void (skipped += 1);
          flushSkipped();
          bars.clear();
          say(`\n[${index}/${total}] ${label}${etaSeconds === null ? "" : `  (study ETA ${formatTime(etaSeconds)})`}`);
        },
        onMessage: (text) => say(text),
        onProgress: (label, done, total) => {
          let bar = bars.get(label);
          if (!bar) bars.set(label, (bar = new Progress(label, total, done)));
          bar.total = total;
          bar.update(done);
        },
      });
      flushSkipped();
      if (args.json) return console.log(JSON.stringify(result));
      console.log(`\n${formatStudy(result)}`);
      console.log(`\n${join(options.out, "report.html")}, study.json (${((Date.now() - start) / 60000).toFixed(1)} min)`);
    });
}
