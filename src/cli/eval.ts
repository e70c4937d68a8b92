// `diffprune eval`: the numbers a pruned model is judged by (size, FID, SSIM/MSE against the
// reference on shared initial noise, latency and speed-up), written to metrics.json and printed.
// With several processes, each samples its share of the noise (model and reference), and rank 0
// gathers them and alone computes the metrics (FID and SSIM once, latency undisturbed).
import type { Command } from "commander";
import * as torch from "../torch/index.js";
import { writeJsonAtomic } from "../io/index.js";
import { checkInputFiles, checkOutputs, writeFileMakingDirs } from "../io/paths.js";
import { datasetPath, openDataset } from "../data/index.js";
import type { Tensor } from "../torch/index.js";
import { disposePipeline, imageShape, initialNoise, loadPipeline, SKIP_TYPES, type Pipeline, type Scheduler, type SkipType } from "../diffusion/index.js";
import { ClassifierExtractor, evaluate, evaluationSamples, InceptionExtractor, type EvalReport, type FeatureExtractor } from "../metrics/index.js";
import { gatherRows, inGroup, shardRows, isMainProcess } from "../workflow/distributed.js";
import { addLaunchOptions, runLaunched, type LaunchArgs } from "./launch.js";
import { defaultClassifierDir } from "../metrics/extractors/classifier.js";
import { applyDType, DTYPE_HELP, inferenceDType, nonNegativeInt, oneOf, positiveInt, SKIP_HELP, type InferenceDType } from "./args.js";
import { Progress } from "./progress.js";

type ExtractorName = "classifier" | "inception";

interface EvalArgs {
  model: string;
  reference?: string;
  fid?: boolean;
  ssim?: boolean;
  latency?: boolean;
  num: number;
  steps: number;
  skip: SkipType;
  seed: number;
  initNoise?: string;
  batchSize: number;
  data: string;
  dataLimit?: number;
  extractor: ExtractorName;
  classifier?: string;
  inceptionWeights?: string;
  latencyBatch: number;
  repeats: number;
  out: string;
  dtype: InferenceDType;
  json?: boolean;
}

function loadExtractor(args: EvalArgs): FeatureExtractor {
  if (args.extractor === "classifier") return ClassifierExtractor.load(args.classifier);
  if (!args.inceptionWeights)
    throw new Error("--extractor inception needs --inception-weights FILE: pytorch-fid's pt_inception-2015-12-05-6726825d.pth saved as safetensors");
  return InceptionExtractor.load(args.inceptionWeights);
}

const int = (n: number) => n.toLocaleString("en-US");
const num = (n: number | null | undefined, digits: number) => (n === null || n === undefined ? "-" : n.toFixed(digits));

/** The report as an aligned text table. */
export function formatReport(r: EvalReport): string {
  const rows: string[][] = [["", "model", "reference", ""]];
  rows.push(["params", int(r.params.model), r.params.reference === null ? "-" : int(r.params.reference), r.params.reference ? `ratio ${(r.params.reference / r.params.model).toFixed(2)}x` : ""]);
  rows.push(["MACs per image", int(r.macs.model), r.macs.reference === null ? "-" : int(r.macs.reference), r.macs.reference ? `ratio ${(r.macs.reference / r.macs.model).toFixed(2)}x` : ""]);
  if (r.fid) rows.push([`FID (${r.fid.extractor}, ${r.fid.num_samples} vs ${r.fid.num_reference} ${r.fid.dataset})`, num(r.fid.model, 3), num(r.fid.reference, 3), ""]);
  if (r.ssim) {
    rows.push([`SSIM vs reference (${r.ssim.num_samples} samples)`, num(r.ssim.mean, 4), "", ""]);
    rows.push(["MSE vs reference", r.ssim.mse.toExponential(3), "", ""]);
  }
  if (r.latency) {
    r.latency.model.forEach((l, i) => {
      const ref = r.latency!.reference?.[i];
      const speedup = r.latency!.speedup?.[`batch${l.batch_size}`];
      rows.push([`ms per evaluation, batch ${l.batch_size}`, num(l.median_ms, 1), num(ref?.median_ms, 1), speedup === undefined ? "" : `speed-up ${speedup.toFixed(2)}x`]);
    });
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(c === 3 ? 0 : widths[c]!))).join("  ").trimEnd()).join("\n");
}

/**
 * `model`'s samples from `noise` as evaluate makes them (DDIM, eta 0, 8-bit), this rank making
 * its share; every rank gets them all.
 */
function sampleShared(p: Pick<Pipeline, "model" | "autoencoder">, scheduler: Scheduler, noise: Tensor, args: EvalArgs, onStep: (done: number, total: number) => void): Tensor {
  const mine = evaluationSamples(p.model, p.autoencoder, scheduler, shardRows(noise), { steps: args.steps, skip: args.skip, batchSize: args.batchSize, onStep });
  const all = gatherRows(mine, noise.shape[0]!);
  mine.dispose();
  return all;
}

export function evalAction(args: EvalArgs): void {
  if (args.ssim && !args.reference) throw new Error("--ssim compares the model's samples with the reference's: give --reference DIR");
  checkOutputs(
    [{ flag: "--out", path: args.out, kind: "file" }],
    [
      { flag: "--model", path: args.model },
      { flag: "--reference", path: args.reference },
      { flag: "--init-noise", path: args.initNoise },
      { flag: "--classifier", path: args.classifier ?? defaultClassifierDir() },
      { flag: "--inception-weights", path: args.inceptionWeights },
      { flag: "--data", path: datasetPath(args.data) },
    ],
  );
  checkInputFiles([
    { flag: "--init-noise", path: args.initNoise },
    { flag: "--inception-weights", path: args.inceptionWeights },
  ]);
  const pipeline = loadPipeline({ model: args.model }, { latent: true });
  const { model, scheduler, autoencoder } = pipeline;
  applyDType(model, args.dtype); // the model's only: the reference stays float32 (bf16 against float32 is one use)
  const referencePipeline = args.reference ? loadPipeline({ model: args.reference }, { latent: true }) : null;
  const reference = referencePipeline?.model ?? null;
  // The images FID and SSIM see: a latent pipeline's decoded samples.
  const { channels, size } = imageShape(model, autoencoder);
  // No metric named: all that apply. SSIM needs a reference; FID an extractor that takes the
  // model's images (the classifier: 1x32x32; Inception: any, once given its weights).
  const all = !args.fid && !args.ssim && !args.latency;
  const fidApplies = args.extractor === "inception" ? Boolean(args.inceptionWeights) : channels === 1 && size === 32;
  const want = { fid: Boolean(args.fid) || (all && fidApplies), ssim: Boolean(args.ssim) || (all && reference !== null), latency: all || Boolean(args.latency) };
  const extractor = want.fid ? loadExtractor(args) : null;
  const dataset = extractor ? openDataset(args.data, { sampleSize: size, channels }) : null;
  if (extractor?.inputShape && extractor.inputShape.join() !== [channels, size, size].join())
    throw new Error(
      `${extractor.name} takes ${extractor.inputShape.join("x")} images but the model makes ${channels}x${size}x${size}: ` +
        `use --extractor inception --inception-weights FILE`,
    );
  const noise = want.fid || want.ssim ? initialNoise(model, { file: args.initNoise, num: args.num, seed: args.seed }) : undefined;
  if (want.fid && noise && noise.shape[0]! < 2) throw new Error("--fid needs at least 2 samples (--num); FID is biased at small N, 1000 or more is usual");

  const bars = new Map<string, Progress>();
  const main = isMainProcess();
  const progress = (stage: string, done: number, total: number) => {
    if (!main) return;
    let bar = bars.get(stage);
    if (!bar) bars.set(stage, (bar = new Progress(stage, total)));
    bar.total = total;
    bar.update(done);
  };
  let shared: { model: Tensor; reference: Tensor | null } | null = null;
  if (inGroup() && noise) {
    if (noise.shape[0]! < torch.distributed.getWorldSize())
      throw new Error(`${noise.shape[0]} samples cannot be shared among ${torch.distributed.getWorldSize()} processes: ask for at least as many (--num) as processes`);
    shared = {
      model: sampleShared(pipeline, scheduler, noise, args, (d, t) => progress("sample model", d, t)),
      reference: referencePipeline ? sampleShared(referencePipeline, scheduler, noise, args, (d, t) => progress("sample reference", d, t)) : null,
    };
    if (!main) {
      torch.dispose([shared.model, ...(shared.reference ? [shared.reference] : []), noise]);
      disposePipeline(pipeline);
      if (referencePipeline) disposePipeline(referencePipeline);
      return;
    }
  }
  const report = evaluate({
    model,
    autoencoder,
    reference,
    referenceAutoencoder: referencePipeline?.autoencoder ?? null,
    scheduler,
    ...(shared ? { samples: shared } : noise ? { noise } : {}),
    steps: args.steps,
    skip: args.skip,
    batchSize: args.batchSize,
    fid: extractor && dataset ? { extractor, dataset, spec: args.data, ...(args.dataLimit !== undefined ? { limit: args.dataLimit } : {}) } : null,
    ssim: want.ssim,
    latency: want.latency ? { batchSizes: [1, args.latencyBatch], repeats: args.repeats } : null,
    onProgress: progress,
  });
  if (shared && noise) {
    report.sampler = { scheduler: "ddim", eta: 0, steps: args.steps, skip: args.skip, num_samples: noise.shape[0]! };
    torch.dispose([shared.model, ...(shared.reference ? [shared.reference] : [])]);
  }
  noise?.dispose();

  const metrics = {
    model: args.model,
    reference: args.reference ?? null,
    seed: args.initNoise ? null : args.seed,
    init_noise: args.initNoise ?? null,
    ...report,
  };
  writeFileMakingDirs(args.out, (path) => writeJsonAtomic(path, metrics));
  if (args.json) console.log(JSON.stringify(metrics, null, 2));
  else console.log(`${formatReport(report)}\nmetrics in ${args.out}`);
  disposePipeline(pipeline);
  if (referencePipeline) disposePipeline(referencePipeline);
}

export function registerEval(program: Command): void {
  const cmd = program
    .command("eval")
    .description("evaluate a model (against its reference): params, FID, SSIM/MSE consistency, latency; writes metrics.json")
    .requiredOption("--model <dir>", "diffusers model or pipeline folder (the pruned model)")
    .option("--reference <dir>", "the model to compare with (the original)")
    .option("--fid", "FID of the model's (and reference's) samples against --data")
    .option("--ssim", "SSIM and MSE between model and reference samples from the same noise")
    .option("--latency", "milliseconds per UNet evaluation, and the speed-up over the reference")
    .option("--num <n>", "samples for FID and SSIM", positiveInt, 1000)
    .option("--steps <n>", "DDIM steps (eta 0)", positiveInt, 100)
    .option("--skip <type>", SKIP_HELP, oneOf<SkipType>(...SKIP_TYPES), "uniform")
    .option("--seed <n>", "seed of the initial noise", nonNegativeInt, 0)
    .option("--init-noise <file>", "safetensors file with `noise` [N, C, H, W] (overrides --num, --seed)")
    .option("--batch-size <n>", "images denoised at once", positiveInt, 64)
    .option("--data <spec>", "FID's reference images (a dataset spec)", "fashion-mnist")
    .option("--data-limit <n>", "use the first N images of --data for its statistics (default: all)", positiveInt)
    .option("--extractor <name>", "FID features: classifier (Fashion-MNIST) or inception", oneOf<ExtractorName>("classifier", "inception"), "classifier")
    .option("--classifier <dir>", "classifier folder (default: the shipped models/fmnist-classifier)")
    .option("--inception-weights <file>", "pytorch-fid's Inception weights as safetensors (for --extractor inception)")
    .option("--latency-batch <n>", "the sampling batch timed besides batch 1", positiveInt, 64)
    .option("--repeats <n>", "timed runs per batch size (the median is reported)", positiveInt, 5)
    .option("--out <file>", "where to write the metrics", "metrics.json")
    .option("--dtype <type>", `${DTYPE_HELP}; the model's only, the reference runs in float32`, inferenceDType, "float32")
    .option("--json", "print the metrics as JSON instead of a table");
  addLaunchOptions(cmd).action((args: EvalArgs & LaunchArgs) => runLaunched(args, () => evalAction(args)));
}
