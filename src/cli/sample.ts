// `diffprune sample`: images from a model folder (or an exported .onnx file, run in onnxruntime),
// as PNGs, a grid, and the raw float samples. A latent pipeline's samples are decoded by its
// autoencoder, as diffusers' LDMPipeline does. With several processes, each denoises its share
// of the initial noise and rank 0 writes them all (the same images as one process with the
// deterministic DDIM; a stochastic sampler's per-step draws are each process's own).
import { join } from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import * as torch from "../torch/index.js";
import { imageFromTensor, makeGrid, saveFile, writePng } from "../io/index.js";
import {
  defaultClassLabels,
  disposePipeline,
  generateAsync,
  generateImages,
  initialNoise,
  loadPipeline,
  samplingScheduler,
  SKIP_TYPES,
  type ClassConditioning,
  type ClassLabelsInput,
  type GenerateOptions,
  type SchedulerName,
  type SkipType,
} from "../diffusion/index.js";
import { loadOnnxPipeline } from "../export/index.js";
import { checkInputFiles, checkOutputs, onlyHolds, writeFolderAtomic } from "../io/paths.js";
import { applyDType, DTYPE_HELP, fraction, inferenceDType, nonNegativeInt, oneOf, positiveInt, SKIP_HELP, type InferenceDType } from "./args.js";
import { Progress } from "./progress.js";
import { addLaunchOptions, runLaunched, type LaunchArgs } from "./launch.js";
import { gatherRows, inGroup, myRows, shardList, shardRows, isMainProcess } from "../workflow/distributed.js";

type Runtime = "libtorch" | "onnxruntime";

const withLabels = (classLabels: ClassLabelsInput | undefined): Partial<GenerateOptions> => (classLabels === undefined ? {} : { classLabels });

interface SampleArgs {
  model: string;
  runtime: Runtime;
  out: string;
  scheduler: SchedulerName;
  steps?: number;
  eta: number;
  skip: SkipType;
  num: number;
  batchSize: number;
  seed: number;
  initNoise?: string;
  classLabels?: number[];
  dtype: InferenceDType;
  json?: boolean;
}

/** --class-labels: one class for every sample, or one per sample, comma-separated. */
function classList(value: string): number[] {
  const labels = value.split(",").map((v) => v.trim());
  if (labels.some((l) => !/^\d+$/.test(l))) throw new InvalidArgumentError(`expected class numbers 0, 1, ... separated by commas, got ${JSON.stringify(value)}`);
  return labels.map(Number);
}

/**
 * The labels of `n` samples: --class-labels (one for all, or one each), or for a model with a
 * class table and none given, its classes in turn (0, 1, ..., K-1, 0, ...), said on stderr.
 */
function labelsFor(config: ClassConditioning, given: number[] | undefined, n: number, say = true): ClassLabelsInput | undefined {
  if (given !== undefined) return given.length === 1 ? given[0]! : given;
  const cycled = defaultClassLabels(config, n, "sample: no --class-labels");
  if (cycled && say) console.error(`class-conditional model (num_class_embeds ${config.num_class_embeds}): sampling its classes in turn; choose them with --class-labels`);
  return cycled;
}

/** What sample writes; an existing --out holding only these (or nothing) may be replaced. */
const isSampleOutput = (name: string): boolean => /^\d{5,}\.png$/.test(name) || name === "grid.png" || name === "samples.safetensors";

export async function sampleAction(args: SampleArgs): Promise<void> {
  checkOutputs(
    [{ flag: "--out", path: args.out, kind: "folder", reuse: onlyHolds("samples (NNNNN.png, grid.png, samples.safetensors)", isSampleOutput) }],
    [
      { flag: "--model", path: args.model },
      { flag: "--init-noise", path: args.initNoise },
    ],
  );
  checkInputFiles([{ flag: "--init-noise", path: args.initNoise }, ...(args.runtime === "onnxruntime" ? [{ flag: "--model", path: args.model }] : [])]);
  const onnx = args.runtime === "onnxruntime" ? await loadOnnxPipeline(args.model) : null;
  if (onnx && args.dtype !== "float32") throw new Error("--dtype bf16 runs the UNet in libtorch: leave it out with --runtime onnxruntime");
  const pipeline = onnx ? null : loadPipeline({ model: args.model }, { latent: true });
  if (pipeline) applyDType(pipeline.model, args.dtype);
  const { model, scheduler: base } = onnx ?? pipeline!;
  const scheduler = samplingScheduler(base, args.scheduler);
  const noise = initialNoise(model, { file: args.initNoise, num: args.num, seed: args.seed });
  torch.manualSeed(args.seed); // stochastic steps (DDPM, eta > 0) draw from here
  const n = noise.shape[0]!;
  const main = isMainProcess();
  if (inGroup() && n < torch.distributed.getWorldSize())
    throw new Error(`${n} samples cannot be shared among ${torch.distributed.getWorldSize()} processes: ask for at least as many samples (--num) as processes`);
  const labels = labelsFor(model.config, args.classLabels, n, main);
  const progress = new Progress("sample", 1, 0, "step");
  const options: GenerateOptions = {
    ...(args.steps !== undefined ? { numInferenceSteps: args.steps } : {}),
    eta: args.eta,
    skip: args.skip,
    batchSize: args.batchSize,
    // one label per sample goes with its noise; a wrong count is left for generate to refuse
    ...withLabels(Array.isArray(labels) && labels.length === n ? shardList(labels) : labels),
    onStep: (done, total) => {
      if (!main) return;
      progress.total = total;
      progress.update(done);
    },
  };
  const local = shardRows(noise);
  const mine = pipeline ? generateImages(pipeline, scheduler, local, options) : await generateAsync(onnx!.model, scheduler, local, options);
  await onnx?.model.release();
  if (pipeline) disposePipeline(pipeline);
  const samples = inGroup() ? gatherRows(mine, n) : mine;
  if (samples !== mine) mine.dispose();
  if (!main) return; // rank 0 writes every process's samples
  if (inGroup()) console.error(`${n} samples made by ${torch.distributed.getWorldSize()} processes (${myRows(n).count} here)`);
  // Built beside --out and renamed into place: never a set mixing two runs, or a partial one.
  writeFolderAtomic(args.out, (dir) => {
    for (let i = 0; i < n; i++) torch.tidy(() => writePng(join(dir, `${String(i).padStart(5, "0")}.png`), imageFromTensor(samples.select(0, i))));
    writePng(join(dir, "grid.png"), makeGrid(samples));
    saveFile({ samples }, join(dir, "samples.safetensors"));
  });
  if (args.json) console.log(JSON.stringify({ out: args.out, num: n, steps: scheduler.timesteps.length, runtime: args.runtime }));
  else console.log(`${n} samples in ${args.out} (grid.png, samples.safetensors)`);
}

export function registerSample(program: Command): void {
  const cmd = program
    .command("sample")
    .description("sample images from a model folder, or from an exported .onnx file in onnxruntime")
    .requiredOption("--model <dir>", "diffusers model or pipeline folder, latent pipelines (LDMPipeline) too (an .onnx file with --runtime onnxruntime)")
    .option("--runtime <name>", "libtorch, or onnxruntime for a file from diffprune export (its scheduler is in the file)", oneOf<Runtime>("libtorch", "onnxruntime"), "libtorch")
    .requiredOption("--out <dir>", "output folder")
    .option("--scheduler <name>", "ddim or ddpm", oneOf<SchedulerName>("ddim", "ddpm"), "ddim")
    .option("--steps <n>", "inference steps (default: 100 for ddim, all for ddpm)", positiveInt)
    .option("--eta <x>", "DDIM eta (0: deterministic)", fraction(true), 0)
    .option("--skip <type>", SKIP_HELP, oneOf<SkipType>(...SKIP_TYPES), "uniform")
    .option("--num <n>", "number of images", positiveInt, 16)
    .option("--batch-size <n>", "images denoised at once", positiveInt, 64)
    .option("--seed <n>", "random seed", nonNegativeInt, 0)
    .option("--init-noise <file>", "safetensors file with `noise` [N, C, H, W], the UNet's input (a latent pipeline's latents; overrides --num)")
    .option("--class-labels <list>", "a class-conditional model's classes: one for all samples, or one per sample, comma-separated (default: its classes in turn)", classList)
    .option("--dtype <type>", DTYPE_HELP, inferenceDType, "float32")
    .option("--json", "print {out, num, steps, runtime} as JSON when done");
  addLaunchOptions(cmd).action((args: SampleArgs & LaunchArgs) => runLaunched(args, () => sampleAction(args)));
}
