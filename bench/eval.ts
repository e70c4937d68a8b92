// Evaluation benchmark: FID feature extraction (images/s for the shipped classifier and for
// Inception-v3 at 299x299), the FID computation itself for 10k samples (Gaussian fit + Frechet
// distance, at the classifier's 128 and Inception's 2048 dimensions), and UNet latency at batch 1
// and 64 of the shipped model and of google/ddpm-cifar10-32's architecture against 30%-pruned
// copies (magnitude criterion: the widths are what matter for speed), with the MACs ratio beside
// the speed-ups; the shipped model also exported to ONNX and run in onnxruntime (CPU, as many
// threads as libtorch), and cast to bfloat16. Prints one JSON
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

interface Architecture {
  name: string;
  source: string;
  load: () => UNet2DModel;
  /** Timed runs per batch size and round (a cifar10 forward at batch 64 takes seconds). */
  repeats: Record<number, number>;
}

/** The shipped model (trained weights), and google/ddpm-cifar10-32's architecture at random weights. */
function architectures(root: string): Architecture[] {
  const shipped = join(root, "models/fashion-mnist");
  const cifarConfig = JSON.parse(readFileSync(join(root, "test/fixtures/ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
  const seeded = (make: () => UNet2DModel) => () => {
    torch.manualSeed(0);
    return torch.noGrad(make);
  };
  return [
    existsSync(shipped)
      ? { name: "shipped", source: "models/fashion-mnist/ (trained weights)", load: seeded(() => UNet2DModel.fromPretrained(shipped)), repeats: { 1: 15, 64: 5 } }
      : {
          name: "shipped",
          source: "models/fashion-mnist-32.config.json, random weights (seed 0)",
          load: seeded(() => new UNet2DModel(JSON.parse(readFileSync(join(root, "models/fashion-mnist-32.config.json"), "utf8")) as Record<string, unknown>)),
          repeats: { 1: 15, 64: 5 },
        },
    { name: "ddpm_cifar10_32", source: "google/ddpm-cifar10-32 config, random weights (seed 0)", load: seeded(() => new UNet2DModel(cifarConfig)), repeats: { 1: 7, 64: 2 } },
  ];
}

const BATCHES = [1, 64];
const ROUNDS = QUICK ? 1 : 3;

/**
 * Median milliseconds per forward of each model at each batch size. Rounds alternate between the
 * models (each round times every model at every batch size), so that load drifting over the
 * run hits them alike; the median is over every timed run of every round.
 */
function interleavedMs(models: Record<string, UNet2DModel>, repeats: Record<number, number>): Record<string, Record<number, number>> {
  const runs: Record<string, Record<number, number[]>> = {};
  for (let r = 0; r < ROUNDS; r++)
    for (const b of BATCHES)
      for (const [name, m] of Object.entries(models)) {
        const [l] = measureLatency(m, { batchSizes: [b], warmup: QUICK ? 1 : 2, repeats: QUICK ? 1 : repeats[b]! });
        ((runs[name] ??= {})[b] ??= []).push(...l!.runsMs);
      }
  return Object.fromEntries(Object.entries(runs).map(([name, byBatch]) => [name, Object.fromEntries(Object.entries(byBatch).map(([b, ms]) => [b, median(ms)]))]));
}

/** Speed-ups of `slim` over `base` per batch, and their ratio to a MACs ratio when given. */
function speedups(ms: Record<string, Record<number, number>>, base: string, slim: string, macsRatio: number | null, prefix = ""): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of BATCHES) {
    const speedup = ms[base]![b]! / ms[slim]![b]!;
    out[`${prefix}${base}_ms_batch${b}`] = round(ms[base]![b]!, 2);
    out[`${prefix}${slim}_ms_batch${b}`] = round(ms[slim]![b]!, 2);
    out[`${prefix}speedup_batch${b}`] = round(speedup, 3);
    if (macsRatio !== null) out[`${prefix}speedup_over_macs_ratio_batch${b}`] = round(speedup / macsRatio, 3);
  }
  return out;
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
 * An architecture against its 30%-pruned copy (magnitude criterion: the widths are what matter
 * for speed), in NCHW and in channels_last, timed in libtorch in interleaved rounds; the shipped
 * model also with widths rounded to 8 and 16 (`--round-to`), exported to onnxruntime, and cast to
 * bfloat16.
 */
async function latency(arch: Architecture): Promise<Record<string, unknown>> {
  const macs = (m: UNet2DModel) => countOpsAndParams(m, unetForward(m)).macs;
  const pruned = (roundTo: number | null): UNet2DModel => {
    const m = arch.load();
    const scheduler = new DDPMScheduler();
    pruneUNet(m, { criterion: "magnitude", ratio: 0.3, scheduler, roundTo });
    scheduler.dispose();
    return m;
  };
  // widths rounded to oneDNN's blocks (--round-to): the trade of MACs for speed, where widths are
  // not multiples of 16 already (ddpm-cifar10-32 at 0.3 keeps 96 and 192: no difference there)
  const roundTos = arch.name === "shipped" ? [8, 16] : [];
  const models: Record<string, UNet2DModel> = {
    original: arch.load(),
    pruned: pruned(null),
    ...Object.fromEntries(roundTos.map((r) => [`pruned_round_to_${r}`, pruned(r)])),
    original_channels_last: arch.load().toMemoryFormat("channels_last"),
    pruned_channels_last: pruned(null).toMemoryFormat("channels_last"),
  };
  const macsOf = Object.fromEntries(Object.entries(models).map(([name, m]) => [name, macs(m)]));
  progress(`latency: ${arch.source}, its 30%-pruned copy${roundTos.length ? `, that copy with widths rounded to ${roundTos.join(" and ")}` : ""}, and both in channels_last (${ROUNDS} interleaved rounds)`);
  const ms = interleavedMs(models, arch.repeats);
  const ratio = (name: string) => macsOf.original! / macsOf[name]!;
  const out: Record<string, unknown> = {
    source: arch.source,
    macs_original: macsOf.original,
    params_pruned: models.pruned!.numParameters(),
    macs_ratio: round(ratio("pruned"), 3),
    ...speedups(ms, "original", "pruned", ratio("pruned")),
    ...Object.fromEntries(
      roundTos.map((r) => {
        const name = `pruned_round_to_${r}`;
        return [`round_to_${r}`, { params: models[name]!.numParameters(), macs_ratio: round(ratio(name), 3), ...speedups(ms, "original", name, ratio(name)) }];
      }),
    ),
    // the layout's own gain (NHWC over NCHW, same model), and pruning's payoff within NHWC
    channels_last: { layout: speedups(ms, "original", "original_channels_last", null), pruned: speedups(ms, "original_channels_last", "pruned_channels_last", ratio("pruned")) },
  };
  if (arch.name === "shipped") {
    const options = QUICK ? { warmup: 1, repeats: 2 } : { warmup: 3, repeats: 11 };
    progress("latency: the original and the pruned model exported to ONNX, in onnxruntime");
    const onnx = { original: await onnxruntimeTimer(models.original!, options), pruned: await onnxruntimeTimer(models.pruned!, options) };
    for (const b of BATCHES) {
      const [original, slim] = [await onnx.original.ms(b), await onnx.pruned.ms(b)];
      Object.assign(out, { [`onnxruntime_original_ms_batch${b}`]: round(original, 2), [`onnxruntime_pruned_ms_batch${b}`]: round(slim, 2), [`onnxruntime_speedup_batch${b}`]: round(original / slim, 3) });
    }
    await Promise.all([onnx.original.release(), onnx.pruned.release()]);
    progress("latency: the original in float32 and in bfloat16 (sample/eval --dtype bf16)");
    const bf16 = arch.load().to("bfloat16");
    out.bfloat16 = speedups(interleavedMs({ float32: models.original!, bfloat16: bf16 }, arch.repeats), "float32", "bfloat16", null);
    bf16.dispose();
  }
  Object.values(models).forEach((m) => m.dispose());
  return out;
}

/** One architecture after the other: nothing else runs while one is timed. */
async function latencies(root: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const a of architectures(root)) out[a.name] = await latency(a);
  return out;
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
    latency: await latencies(root),
    statistic:
      "latency: median of every timed run (after warm-up) over interleaved rounds, one UNet forward under noGrad, eval mode, batch 1 and 64 (onnxruntime: one session run, CPU provider, libtorch's thread count); speedup_over_macs_ratio = speed-up / MACs ratio (1 = the pruned model is as much faster as its MACs say)",
    live_tensors_after: torch.memory().numTensors,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
