// Training and evaluation benchmark: the UNet training step (forward + backward + AdamW on the
// epsilon-MSE objective) and single evaluations, for google/ddpm-cifar10-32's config and for the
// embedded Fashion-MNIST model, with the GFLOP/s they reach and a 1024^3 matmul as the machine's
// yardstick. Prints one JSON object to stdout; progress goes to stderr.
// BENCH_QUICK=1 cuts the repeats (a smoke run, not a measurement).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../src/torch/index.js";
import { Attention, Conv2d, GroupNorm, Linear } from "../src/nn/index.js";
import { UNet2DModel } from "../src/models/index.js";
import { median, progress, round, timeRepeat, trainingStep } from "./common.js";
import { packageRoot } from "../src/io/index.js";

const QUICK = process.env.BENCH_QUICK === "1";
const BATCH = 8;
const SEED = 0;
/** The project's trainer clips at 1 by default, so the timed step does too (it costs ~1%). */
const GRAD_CLIP = 1;
const MATMUL_N = 1024;

interface Repeats {
  warmup: number;
  timed: number;
}
/** Per model: the cifar10 training step is ~3 s on 2 cores, the embedded one ~20x cheaper. */
interface Plan {
  train: Repeats;
  eval1: Repeats;
  eval8: Repeats;
}
const quickPlan: Plan = { train: { warmup: 1, timed: 2 }, eval1: { warmup: 1, timed: 2 }, eval8: { warmup: 1, timed: 2 } };
const PLANS: Record<"cifar10" | "embedded", Plan> = QUICK
  ? { cifar10: quickPlan, embedded: quickPlan }
  : {
      cifar10: { train: { warmup: 1, timed: 5 }, eval1: { warmup: 2, timed: 7 }, eval8: { warmup: 1, timed: 5 } },
      embedded: { train: { warmup: 3, timed: 15 }, eval1: { warmup: 3, timed: 21 }, eval8: { warmup: 3, timed: 15 } },
    };

// From NOTES.md ("The peer on this machine"): diffusers 0.17 on PyTorch 1.13, 2 threads,
// random weights. Not measured here: diffusers is not installed on this machine.
const PEER_CIFAR10 = { train_images_per_s: 2.4, eval_ms_batch1: 284, eval_ms_batch8: 889 } as const;


/**
 * Multiply-accumulates of one forward pass at batch 1, counted analytically per module. Output
 * sizes come from the module's dotted name: down_blocks.i runs at sample_size / 2^i, up_blocks.i
 * at sample_size / 2^(n-1-i), mid_block at the lowest resolution, everything else at full size;
 * a downsampler's conv reads its block's resolution (stride halves it), an upsampler's conv runs
 * after the x2 interpolation. Elementwise ops (SiLU, adds, softmax, scaling) are not counted.
 */
function forwardMacs(model: UNet2DModel): number {
  const size = model.config.sample_size;
  const levels = model.config.block_out_channels.length;
  const resolution = (name: string): number => {
    const down = /^down_blocks\.(\d+)\./.exec(name);
    if (down) return size / 2 ** Number(down[1]);
    const up = /^up_blocks\.(\d+)\./.exec(name);
    if (up) {
      const r = size / 2 ** (levels - 1 - Number(up[1]));
      return name.includes(".upsamplers.") ? 2 * r : r;
    }
    if (name.startsWith("mid_block.")) return size / 2 ** (levels - 1);
    return size;
  };

  let macs = 0;
  for (const [name, m] of model.namedModules()) {
    const res = resolution(name);
    if (m instanceof Conv2d) {
      const out = Math.ceil(res / m.stride) ** 2; // H = W; both padding modes give res / stride here
      macs += m.kernelSize ** 2 * (m.inChannels / m.groups) * m.outChannels * out;
      if (m.bias !== null) macs += m.outChannels * out;
    } else if (m instanceof Linear) {
      // Attention projections act on every pixel as a token; the time-embedding layers once.
      const tokens = name.includes(".attentions.") ? res * res : 1;
      macs += tokens * (m.inFeatures * m.outFeatures + (m.bias !== null ? m.outFeatures : 0));
    } else if (m instanceof GroupNorm) {
      macs += 2 * m.numChannels * res * res;
    } else if (m instanceof Attention) {
      // q @ k^T and attn @ v: L*L*C each, over all heads (inner width C = heads * dimHead).
      const tokens = res * res;
      macs += 2 * tokens * tokens * m.toQ.outFeatures;
    }
  }
  return macs;
}

/** Median seconds of one call over `timed` calls, after `warmup` untimed ones. */
function medianSeconds(fn: () => void, { warmup, timed }: Repeats): number {
  timeRepeat(fn, warmup);
  const runs = Array.from({ length: timed }, () => timeRepeat(fn, 1).seconds);
  progress(`    runs (s): ${runs.map((s) => s.toPrecision(3)).join(" ")}`);
  return median(runs);
}

interface ModelFigures {
  params: number;
  macs_batch1: number;
  train_images_per_s: number;
  gflops_per_s: number;
  eval_ms_batch1: number;
  eval_ms_batch8: number;
  eval_gflops_per_s_batch8: number;
}

function benchModel(label: string, model: UNet2DModel, plan: Plan): ModelFigures {
  const c = model.config;
  const shape = (batch: number): number[] => [batch, c.in_channels, c.sample_size, c.sample_size];
  const macs = forwardMacs(model);
  progress(`${label}: ${model.numParameters()} params, ${(macs / 1e9).toFixed(3)} GMACs per image`);

  // Evaluation: the sampling loop's unit of work.
  model.eval();
  const evalMs = (batch: number, repeats: Repeats): number => {
    progress(`  ${label}: evaluation, batch ${batch}`);
    const x = torch.keep(torch.randn(shape(batch)));
    const s = medianSeconds(() => torch.noGrad(() => torch.tidy(() => void model.forward(x, 500))), repeats);
    x.dispose();
    return s * 1000;
  };
  const eval1 = evalMs(1, plan.eval1);
  const eval8 = evalMs(BATCH, plan.eval8);

  // Training, as the project's Trainer steps: fresh noise and timesteps each step, grads set to
  // none after the update. Random images stand in for data: the cost does not depend on them.
  progress(`  ${label}: training step, batch ${BATCH}`);
  const training = trainingStep(model, BATCH, GRAD_CLIP);
  const stepSeconds = medianSeconds(training.step, plan.train);
  training.dispose();

  return {
    params: model.numParameters(),
    macs_batch1: macs,
    train_images_per_s: round(BATCH / stepSeconds),
    gflops_per_s: round((3 * 2 * macs * BATCH) / stepSeconds / 1e9, 1),
    eval_ms_batch1: round(eval1, 1),
    eval_ms_batch8: round(eval8, 1),
    eval_gflops_per_s_batch8: round((2 * macs * BATCH) / (eval8 / 1000) / 1e9, 1),
  };
}

/** 1024^3 float32 matmul GFLOP/s, median of repeats of 10 calls: what the BLAS gives here now. */
function matmulGflops(): number {
  progress(`machine: ${MATMUL_N}^3 matmul`);
  const a = torch.keep(torch.randn([MATMUL_N, MATMUL_N]));
  const b = torch.keep(torch.randn([MATMUL_N, MATMUL_N]));
  const call = (): void => torch.tidy(() => void torch.matmul(a, b));
  timeRepeat(call, 3);
  const runs = Array.from({ length: QUICK ? 2 : 7 }, () => timeRepeat(call, 10).seconds);
  torch.dispose([a, b]);
  return round((2 * MATMUL_N ** 3) / median(runs) / 1e9, 1);
}

function main(): void {
  const root = packageRoot();
  const machine = { matmul_gflops_per_s: matmulGflops() };

  const cifarConfig = JSON.parse(readFileSync(join(root, "test/fixtures/ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
  torch.manualSeed(SEED);
  const cifarModel = new UNet2DModel(cifarConfig);
  const cifar10 = { source: "google/ddpm-cifar10-32 config, random weights (seed 0)", ...benchModel("cifar10", cifarModel, PLANS.cifar10) };
  cifarModel.dispose();

  // The shipped trained model once it exists; until then its config with random weights.
  const shipped = join(root, "models/fashion-mnist");
  const configFile = join(root, "models/fashion-mnist-32.config.json");
  torch.manualSeed(SEED);
  const [embeddedModel, source] = existsSync(shipped)
    ? [UNet2DModel.fromPretrained(shipped), "models/fashion-mnist/ (trained weights)"]
    : [new UNet2DModel(JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>), "models/fashion-mnist-32.config.json, random weights (seed 0)"];
  const embedded = { source, ...benchModel("embedded", embeddedModel, PLANS.embedded) };
  embeddedModel.dispose();

  const report = {
    benchmark: "train",
    quick: QUICK,
    node_version: process.version,
    torch_version: torch.torchVersion,
    num_threads: torch.getNumThreads(),
    batch: BATCH,
    step: `forward + backward + clipGradNorm(${GRAD_CLIP}) + AdamW step, epsilon-MSE (denoisingLoss, DDPM scheduler, random timesteps), train mode`,
    evaluation: "one UNet forward under noGrad, eval mode, timestep 500",
    statistic: "median over timed repeats after warm-up",
    flop_convention:
      "macs_batch1: analytic MACs of one forward at batch 1 (conv k*k*Cin/groups*Cout*Hout*Wout + bias; linear in*out + out per token; attention 2*L*L*C; group norm 2*numel); training FLOPs = 3 * 2 * MACs * batch (backward ~2x forward, 2 FLOPs per MAC); evaluation FLOPs = 2 * MACs * batch",
    machine,
    cifar10,
    embedded,
    peer: {
      source: "NOTES.md, 'The peer on this machine': diffusers 0.17 UNet2DModel on PyTorch 1.13, 2 threads; not measured in this run (diffusers is not installed here)",
      cifar10: PEER_CIFAR10,
    },
    // > 1 means we are faster: images/s ours/peer, milliseconds peer/ours.
    ratio_vs_peer: {
      source: "this run's cifar10 figures against the NOTES.md peer figures (not measured together)",
      cifar10: {
        train_images_per_s: round(cifar10.train_images_per_s / PEER_CIFAR10.train_images_per_s),
        eval_ms_batch1: round(PEER_CIFAR10.eval_ms_batch1 / cifar10.eval_ms_batch1),
        eval_ms_batch8: round(PEER_CIFAR10.eval_ms_batch8 / cifar10.eval_ms_batch8),
      },
    },
    // Tensors the benchmark left alive: 0 means nothing leaked.
    live_tensors_after: torch.memory().numTensors,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main();
