// Evaluation benchmark: FID feature extraction (images/s for the shipped classifier and for
// Inception-v3 at 299x299), the FID computation itself for 10k samples (Gaussian fit + Frechet
// distance, at the classifier's 128 and Inception's 2048 dimensions), and UNet latency of the
// embedded model at batch 1 and 64 against a 30%-pruned copy (magnitude criterion: the widths are
// what matter for speed), with the MACs ratio beside the speed-ups, and the same two models
// exported to ONNX and run in onnxruntime (CPU, as many threads as libtorch). Prints one JSON
// object to stdout; progress goes to stderr. BENCH_QUICK=1 cuts the sizes (a smoke run, not a
// measurement).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../src/torch/index.js";
import { openDataset } from "../src/data/index.js";
import { UNet2DModel } from "../src/models/index.js";
import { DDPMScheduler } from "../src/diffusion/index.js";
import { countOpsAndParams, pruneUNet, unetForward } from "../src/pruning/index.js";
import { ClassifierExtractor, fitGaussian, frechetDistance, InceptionV3, measureLatency, median } from "../src/metrics/index.js";
import { exportUNet, OnnxSession } from "../src/export/index.js";
import { progress, round } from "./common.js";
import { packageRoot } from "../src/io/index.js";

const QUICK = process.env.BENCH_QUICK === "1";
const FID_SAMPLES = QUICK ? 1000 : 10_000;


/** Images per second of `features` over `batches` batches, after one warm-up batch. */
function imagesPerSecond(features: (x: torch.Tensor) => torch.Tensor, batch: torch.Tensor, batches: number): number {
  const run = () => torch.tidy(() => void features(batch)); // void: nothing escapes the scope
  run();
  const start = performance.now();
  for (let i = 0; i < batches; i++) run();
  return (batches * batch.shape[0]!) / ((performance.now() - start) / 1000);
}

function extraction(): Record<string, unknown> {
  progress("feature extraction: classifier");
  const classifier = ClassifierExtractor.load();
  const test = openDataset("fashion-mnist:test", { sampleSize: 32, channels: 1 });
  const batch = test.getBatch(Array.from({ length: 100 }, (_, i) => i));
  const classifierRate = imagesPerSecond((x) => classifier.features(x), batch, QUICK ? 3 : 20);
  progress("feature extraction: Inception-v3 (random weights, same cost as trained)");
  torch.manualSeed(0);
  const inception = torch.noGrad(() => new InceptionV3());
  const small = batch.narrow(0, 0, 8);
  const inceptionRate = imagesPerSecond((x) => torch.noGrad(() => inception.forward(x)), small, QUICK ? 1 : 4);
  small.dispose();
  inception.dispose();
  classifier.model.dispose();
  batch.dispose();
  return {
    classifier_images_per_s: round(classifierRate, 1),
    classifier_batch: 100,
    inception_images_per_s: round(inceptionRate, 2),
    inception_batch: 8,
    inception_input: "1x32x32 Fashion-MNIST, repeated to RGB and resized to 299x299 (pytorch-fid preprocessing)",
  };
}

/** Seconds to fit two Gaussians to FID_SAMPLES features each and take their Frechet distance. */
function fidTime(dim: number): Record<string, number> {
  progress(`FID computation: ${FID_SAMPLES} samples x ${dim} dims`);
  torch.manualSeed(1);
  const [a, b] = torch.tidy(() => [torch.rand([FID_SAMPLES, dim]), torch.rand([FID_SAMPLES, dim]).add(0.01)]);
  const t0 = performance.now();
  const [sa, sb] = [fitGaussian(a), fitGaussian(b)];
  const t1 = performance.now();
  frechetDistance(sa, sb);
  const t2 = performance.now();
  torch.dispose([a, b, sa.mu, sa.sigma, sb.mu, sb.sigma]);
  return { dims: dim, fit_s: round((t1 - t0) / 1000), frechet_s: round((t2 - t1) / 1000), total_s: round((t2 - t0) / 1000) };
}

function loadEmbedded(root: string): [UNet2DModel, string] {
  const shipped = join(root, "models/fashion-mnist");
  torch.manualSeed(0);
  return existsSync(shipped)
    ? [UNet2DModel.fromPretrained(shipped), "models/fashion-mnist/ (trained weights)"]
    : [new UNet2DModel(JSON.parse(readFileSync(join(root, "models/fashion-mnist-32.config.json"), "utf8")) as Record<string, unknown>), "models/fashion-mnist-32.config.json, random weights (seed 0)"];
}

/** `model` exported and timed in onnxruntime: median milliseconds of one session run at a batch size (timestep 500, as measureLatency). */
async function onnxruntimeTimer(model: UNet2DModel, { warmup, repeats }: { warmup: number; repeats: number }) {
  const session = await OnnxSession.create(exportUNet(model).bytes);
  const c = model.config;
  const ms = async (b: number): Promise<number> => {
    const sample = torch.randn([b, c.in_channels, c.sample_size, c.sample_size]);
    const timestep = torch.full([b], 500, { dtype: "int64" });
    const runsMs: number[] = [];
    for (let i = 0; i < warmup + repeats; i++) {
      const start = performance.now();
      torch.dispose(await session.run({ sample, timestep }));
      if (i >= warmup) runsMs.push(performance.now() - start);
    }
    torch.dispose([sample, timestep]);
    return median(runsMs);
  };
  return { ms, release: () => session.release() };
}

/**
 * The embedded model against 30%-pruned copies: as pruned, and with widths rounded to multiples
 * of 8; each in libtorch and, exported, in onnxruntime. Runs alternate between the models per
 * batch size, so machine load hits them alike.
 */
async function latency(root: string): Promise<Record<string, unknown>> {
  const [model, source] = loadEmbedded(root);
  const macs = (m: UNet2DModel) => countOpsAndParams(m, unetForward(m)).macs;
  const options = QUICK ? { warmup: 1, repeats: 2 } : { warmup: 3, repeats: 11 };
  const ms = (m: UNet2DModel, b: number) => measureLatency(m, { batchSizes: [b], ...options })[0]!.medianMs;
  const batches = [1, 64];
  const compare = async (roundTo: number | null): Promise<Record<string, number>> => {
    const [pruned] = loadEmbedded(root);
    const scheduler = new DDPMScheduler();
    pruneUNet(pruned, { criterion: "magnitude", ratio: 0.3, scheduler, roundTo });
    scheduler.dispose();
    const macsRatio = macs(model) / macs(pruned);
    progress(`latency: ${source}, and its 30%-pruned copy${roundTo ? ` with widths rounded to ${roundTo}` : ""}`);
    const out: Record<string, number> = { params: pruned.numParameters(), macs_ratio: round(macsRatio, 3) };
    for (const b of batches) {
      const original = ms(model, b);
      const slim = ms(pruned, b);
      out[`original_ms_batch${b}`] = round(original, 2);
      out[`pruned_ms_batch${b}`] = round(slim, 2);
      out[`speedup_batch${b}`] = round(original / slim, 3);
      out[`speedup_over_macs_ratio_batch${b}`] = round(original / slim / macsRatio, 3);
    }
    progress("latency: the same two models exported to ONNX, in onnxruntime");
    const onnx = { original: await onnxruntimeTimer(model, options), pruned: await onnxruntimeTimer(pruned, options) };
    for (const b of batches) {
      const original = await onnx.original.ms(b);
      const slim = await onnx.pruned.ms(b);
      out[`onnxruntime_original_ms_batch${b}`] = round(original, 2);
      out[`onnxruntime_pruned_ms_batch${b}`] = round(slim, 2);
      out[`onnxruntime_speedup_batch${b}`] = round(original / slim, 3);
    }
    await Promise.all([onnx.original.release(), onnx.pruned.release()]);
    pruned.dispose();
    return out;
  };
  const result = { source, ...options, ...(await compare(null)), round_to_8: await compare(8) };
  model.dispose();
  return result;
}

async function main(): Promise<void> {
  const root = packageRoot();
  const report = {
    benchmark: "eval",
    quick: QUICK,
    node_version: process.version,
    torch_version: torch.torchVersion,
    num_threads: torch.getNumThreads(),
    feature_extraction: extraction(),
    fid_computation: { samples: FID_SAMPLES, classifier: fidTime(128), inception: fidTime(2048) },
    latency: await latency(root),
    statistic: "latency: median over timed runs after warm-up, one UNet forward under noGrad, eval mode (onnxruntime: one session run, CPU provider, libtorch's thread count)",
    live_tensors_after: torch.memory().numTensors,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
