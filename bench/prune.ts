// Pruning benchmark, on google/ddpm-cifar10-32's config (random weights: costs do not depend on
// them): the time to trace the model and build its pruning groups, and the seconds per timestep
// of Diff-Pruning's gradient loop at batch 8 and 32 beside a training step of the same batch
// (the loop is a forward and backward per t, so it should cost no more than a training step).
// Prints one JSON object to stdout; progress goes to stderr. BENCH_QUICK=1 cuts the repeats.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../src/torch/index.js";
import { UNet2DModel } from "../src/models/index.js";
import { DDPMScheduler } from "../src/diffusion/index.js";
import { accumulateGradients, DependencyGraph, pruningGroups, unetForward } from "../src/pruning/index.js";
import { packageRoot } from "../src/io/index.js";
import { median, progress, round, timeRepeat, trainingStep } from "./common.js";

const QUICK = process.env.BENCH_QUICK === "1";
// The first steps of a process grow the heap (at batch 32, 100k-300k page faults per step for
// three or four steps, measured with process.resourceUsage()): warm up past them.
const WARMUP = QUICK ? 1 : 4;
const TIMED = QUICK ? 1 : 3;

function cifar10Config(): Record<string, unknown> {
  const candidates = [process.env.DIFFPRUNE_FIXTURES, join(packageRoot(), "..", "shared", "fixtures")].filter((d): d is string => Boolean(d));
  for (const dir of candidates) {
    try {
      return JSON.parse(readFileSync(join(dir, "ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
    } catch {
      // next candidate
    }
  }
  // google/ddpm-cifar10-32's architecture, for a checkout without the fixtures.
  return {
    block_out_channels: [128, 256, 256, 256],
    down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    layers_per_block: 2, sample_size: 32, in_channels: 3, out_channels: 3, norm_eps: 1e-6, downsample_padding: 0, attention_head_dim: null, flip_sin_to_cos: false, freq_shift: 1,
  };
}

function traceSeconds(model: UNet2DModel): { seconds: number; groups: number; layers: number } {
  let groups = 0;
  let layers = 0;
  const once = () => {
    const graph = DependencyGraph.build(model, unetForward(model));
    groups = [...pruningGroups(graph)].length;
    layers = graph.layers.length;
  };
  once();
  const runs = Array.from({ length: QUICK ? 1 : 5 }, () => timeRepeat(once, 1).seconds);
  return { seconds: round(median(runs), 3), groups, layers };
}

/** Median seconds per t of the gradient loop (every timestep, no early stop), after the first. */
function gradientLoopSeconds(model: UNet2DModel, batch: number): number {
  const c = model.config;
  const scheduler = new DDPMScheduler({ num_train_timesteps: WARMUP + TIMED });
  const images = torch.keep(torch.tidy(() => torch.randn([batch, c.in_channels, c.sample_size, c.sample_size]).clamp(-1, 1)));
  const noise = torch.keep(torch.randn(images.shape as number[]));
  const stamps: number[] = [performance.now()];
  accumulateGradients(model, { images, noise, scheduler, thr: null, onStep: () => stamps.push(performance.now()) });
  const perStep = stamps.slice(WARMUP + 1).map((t, i) => (t - stamps[WARMUP + i]!) / 1000);
  progress(`    runs (s): ${perStep.map((s) => s.toPrecision(3)).join(" ")}`);
  for (const p of model.parameters()) p.grad = null;
  torch.dispose([images, noise]);
  scheduler.dispose();
  return median(perStep);
}

function trainStepSeconds(model: UNet2DModel, batch: number): number {
  const training = trainingStep(model, batch, 1);
  for (let i = 0; i < WARMUP; i++) training.step();
  const runs = Array.from({ length: TIMED }, () => timeRepeat(training.step, 1).seconds);
  progress(`    runs (s): ${runs.map((s) => s.toPrecision(3)).join(" ")}`);
  training.dispose();
  return median(runs);
}

function main(): void {
  torch.manualSeed(0);
  const model = torch.noGrad(() => new UNet2DModel(cifar10Config()));
  progress(`google/ddpm-cifar10-32 config: ${model.numParameters()} params; trace + groups`);
  const trace = traceSeconds(model);
  const loop: Record<string, unknown>[] = [];
  for (const batch of [8, 32]) {
    progress(`  gradient loop, batch ${batch}`);
    const perT = gradientLoopSeconds(model, batch);
    progress(`  training step, batch ${batch}`);
    const train = trainStepSeconds(model, batch);
    loop.push({ batch, gradient_loop_s_per_t: round(perT, 3), train_step_s: round(train, 3), loop_over_train: round(perT / train, 3) });
  }
  model.dispose();
  const report = {
    benchmark: "prune",
    quick: QUICK,
    node_version: process.version,
    torch_version: torch.torchVersion,
    num_threads: torch.getNumThreads(),
    model: "google/ddpm-cifar10-32 config, random weights",
    trace_and_groups_s: trace.seconds,
    layers: trace.layers,
    groups: trace.groups,
    gradient_loop: loop,
    warmup_steps: WARMUP,
    timed_steps: TIMED,
    statistic: "medians of the timed steps after the warm-up ones; gradient loop = forward + backward per t in eval mode (no optimizer), training step = forward + backward + clip + AdamW in train mode",
    live_tensors_after: torch.memory().numTensors,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main();
