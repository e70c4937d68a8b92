// Training and evaluation benchmark: the UNet training step (forward + backward + AdamW on the
// epsilon-MSE objective) and single evaluations, for google/ddpm-cifar10-32's config and for the
// embedded Fashion-MNIST model, with the GFLOP/s they reach and a 1024^3 matmul as the machine's
// yardstick, and DDIM sampling throughput on the embedded model. When Debian's python3-torch is
// importable, the peer (bench/peer_unet.py: diffusers 0.17's UNet2DModel and DDIMPipeline on
// PyTorch, same libtorch, same threads) runs the cifar10 step and evaluations and the sampling in
// the same run, its rounds alternating with ours; otherwise NOTES.md's peer figures stand in.
// Prints one JSON object to stdout; progress goes to stderr.
// BENCH_QUICK=1 cuts the repeats and the sampling steps (a smoke run, not a measurement).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../src/torch/index.js";
import { Attention, Conv2d, GroupNorm, Linear } from "../src/nn/index.js";
import { UNet2DModel } from "../src/models/index.js";
import { disposePipeline, generate, loadPipeline, samplingScheduler, type Scheduler } from "../src/diffusion/index.js";
import { hasPythonTorch, median, PeerProcess, peerScript, progress, round, timeRepeat, trainingStep } from "./common.js";
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
/** DDIM sampling on the embedded model: one timed call is a whole sampling run (~30-45 s each side). */
const SAMPLING = { batch: 64, steps: QUICK ? 10 : 100, warmupEvals: QUICK ? 1 : 2, rounds: QUICK ? 1 : 3 } as const;

// From NOTES.md ("The peer on this machine"): diffusers 0.17 on PyTorch 1.13, 2 threads, random
// weights; what the report compares against when python3-torch is not installed.
const NOTES_PEER_CIFAR10 = { train_images_per_s: 2.4, eval_ms_batch1: 284, eval_ms_batch8: 889 } as const;

interface PeerInfo {
  torch_version: string;
  python_version: string;
  num_threads: number;
  params: number;
}
type Peer = PeerProcess<PeerInfo>;

/** bench/peer_unet.py serving one model, or null without python3-torch. */
async function startPeer(args: string[]): Promise<{ peer: Peer; info: PeerInfo } | null> {
  if (!hasPythonTorch()) return null;
  return PeerProcess.start<PeerInfo>(peerScript("peer_unet.py"), ["--threads", String(torch.getNumThreads()), ...args]);
}


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

/** Seconds per call of each timed round: ours, and the peer's in alternation with ours (null without one). */
interface Rounds {
  ours: number[];
  peer: number[] | null;
}

/** `timed` rounds of one call of ours then one of the peer's bench `peerName`, after `warmup` calls of each. */
async function interleaved(ours: () => void, peer: Peer | null, peerName: string, { warmup, timed }: Repeats): Promise<Rounds> {
  if (warmup > 0) {
    timeRepeat(ours, warmup);
    if (peer !== null) await peer.time(peerName, warmup);
  }
  const rounds: Rounds = { ours: [], peer: peer === null ? null : [] };
  for (let r = 0; r < timed; r++) {
    rounds.ours.push(timeRepeat(ours, 1).seconds);
    if (peer !== null) rounds.peer!.push((await peer.time(peerName, 1)).seconds);
  }
  const fmt = (xs: number[]): string => xs.map((s) => s.toPrecision(3)).join(" ");
  progress(`    ours (s): ${fmt(rounds.ours)}`);
  if (rounds.peer !== null) progress(`    peer (s): ${fmt(rounds.peer)}`);
  return rounds;
}

/** Median over rounds of peer seconds / our seconds: > 1 means we are faster. */
const speedRatio = ({ ours, peer }: Rounds): number | null => (peer === null ? null : round(median(ours.map((s, r) => peer[r]! / s))));

interface ModelFigures {
  params: number;
  macs_batch1: number;
  train_images_per_s: number;
  gflops_per_s: number;
  eval_ms_batch1: number;
  eval_ms_batch8: number;
  eval_gflops_per_s_batch8: number;
}

interface PeerFigures {
  train_images_per_s: number;
  eval_ms_batch1: number;
  eval_ms_batch8: number;
}

interface Measured {
  ours: ModelFigures;
  /** The peer's figures and ours/peer ratios, when a peer ran alongside. */
  peer: PeerFigures | null;
  ratio: PeerFigures | null;
}

async function benchModel(label: string, model: UNet2DModel, plan: Plan, peer: Peer | null): Promise<Measured> {
  const c = model.config;
  const shape = (batch: number): number[] => [batch, c.in_channels, c.sample_size, c.sample_size];
  const macs = forwardMacs(model);
  progress(`${label}: ${model.numParameters()} params, ${(macs / 1e9).toFixed(3)} GMACs per image${peer === null ? "" : " (interleaved with the peer)"}`);

  // Evaluation: the sampling loop's unit of work.
  model.eval();
  const evaluate = async (batch: number, repeats: Repeats): Promise<Rounds> => {
    progress(`  ${label}: evaluation, batch ${batch}`);
    const x = torch.keep(torch.randn(shape(batch)));
    const rounds = await interleaved(() => torch.noGrad(() => torch.tidy(() => void model.forward(x, 500))), peer, `eval${batch}`, repeats);
    x.dispose();
    return rounds;
  };
  const eval1 = await evaluate(1, plan.eval1);
  const eval8 = await evaluate(BATCH, plan.eval8);

  // Training, as the project's Trainer steps: fresh noise and timesteps each step, grads set to
  // none after the update. Random images stand in for data: the cost does not depend on them.
  progress(`  ${label}: training step, batch ${BATCH}`);
  const training = trainingStep(model, BATCH, GRAD_CLIP);
  const train = await interleaved(training.step, peer, "train", plan.train);
  training.dispose();

  const stepSeconds = median(train.ours);
  const eval8Ms = median(eval8.ours) * 1000;
  const ours: ModelFigures = {
    params: model.numParameters(),
    macs_batch1: macs,
    train_images_per_s: round(BATCH / stepSeconds),
    gflops_per_s: round((3 * 2 * macs * BATCH) / stepSeconds / 1e9, 1),
    eval_ms_batch1: round(median(eval1.ours) * 1000, 1),
    eval_ms_batch8: round(eval8Ms, 1),
    eval_gflops_per_s_batch8: round((2 * macs * BATCH) / (eval8Ms / 1000) / 1e9, 1),
  };
  if (peer === null) return { ours, peer: null, ratio: null };
  return {
    ours,
    peer: {
      train_images_per_s: round(BATCH / median(train.peer!)),
      eval_ms_batch1: round(median(eval1.peer!) * 1000, 1),
      eval_ms_batch8: round(median(eval8.peer!) * 1000, 1),
    },
    ratio: { train_images_per_s: speedRatio(train)!, eval_ms_batch1: speedRatio(eval1)!, eval_ms_batch8: speedRatio(eval8)! },
  };
}

/**
 * DDIM sampling throughput at batch 64 on the embedded model: ours with the project's sampler
 * (generate, the paper's "uniform" DDIM), the peer with DDIMPipeline's loop (diffusers' "leading"
 * timesteps): the same number of UNet calls and scheduler steps, eta 0, from noise to samples.
 */
async function benchSampling(model: UNet2DModel, scheduler: Scheduler, peer: Peer | null): Promise<{ ours: number; peer: number | null; ratio: number | null }> {
  const c = model.config;
  const { batch, steps, warmupEvals, rounds: timed } = SAMPLING;
  progress(`embedded: DDIM-${steps} sampling, batch ${batch}${peer === null ? "" : " (interleaved with the peer)"}`);
  const noise = torch.keep(torch.randn([batch, c.in_channels, c.sample_size, c.sample_size]));
  model.eval();
  // Warm-up: batch-64 evaluations (a whole sampling run is long); then whole runs, alternating.
  torch.noGrad(() => timeRepeat(() => torch.tidy(() => void model.forward(noise, 500)), warmupEvals));
  if (peer !== null) await peer.time(`eval${batch}`, warmupEvals);
  const sample = (): void => torch.tidy(() => void generate(model, scheduler, noise, { numInferenceSteps: steps, batchSize: batch }));
  const rounds = await interleaved(sample, peer, "sample", { warmup: 0, timed });
  noise.dispose();
  const imagesPerS = (xs: number[]): number => round(batch / median(xs));
  return { ours: imagesPerS(rounds.ours), peer: rounds.peer === null ? null : imagesPerS(rounds.peer), ratio: speedRatio(rounds) };
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

async function main(): Promise<void> {
  const root = packageRoot();
  const machine = { matmul_gflops_per_s: matmulGflops() };

  const cifarConfigFile = join(root, "test/fixtures/ddpm-cifar10-32.config.json");
  torch.manualSeed(SEED);
  const cifarModel = new UNet2DModel(JSON.parse(readFileSync(cifarConfigFile, "utf8")) as Record<string, unknown>);
  const cifarPeer = await startPeer(["--config", cifarConfigFile, "--seed", String(SEED), "--batch", String(BATCH), "--grad-clip", String(GRAD_CLIP)]);
  const cifar10 = await benchModel("cifar10", cifarModel, PLANS.cifar10, cifarPeer?.peer ?? null);
  cifarPeer?.peer.close();
  cifarModel.dispose();

  // The shipped trained model once it exists; until then its config with random weights.
  const shipped = join(root, "models/fashion-mnist");
  const hasShipped = existsSync(shipped);
  const configFile = join(root, "models/fashion-mnist-32.config.json");
  const pipeline = loadPipeline(hasShipped ? { model: shipped } : { config: configFile, seed: SEED });
  const source = hasShipped ? "models/fashion-mnist/ (trained weights)" : "models/fashion-mnist-32.config.json, random weights (seed 0)";
  const peerModel = hasShipped
    ? ["--config", join(shipped, "config.json"), "--weights", join(shipped, "diffusion_pytorch_model.safetensors"), "--scheduler-config", join(shipped, "scheduler_config.json")]
    : ["--config", configFile, "--seed", String(SEED)];
  const embeddedPeer = await startPeer([...peerModel, "--batch", String(BATCH), "--grad-clip", String(GRAD_CLIP), "--sample-batch", String(SAMPLING.batch), "--sample-steps", String(SAMPLING.steps)]);
  const embedded = await benchModel("embedded", pipeline.model, PLANS.embedded, embeddedPeer?.peer ?? null);
  const ddim = samplingScheduler(pipeline.scheduler, "ddim");
  const sampling = await benchSampling(pipeline.model, ddim, embeddedPeer?.peer ?? null);
  embeddedPeer?.peer.close();
  ddim.dispose();
  disposePipeline(pipeline);

  const samplingKey = `ddim${SAMPLING.steps}_images_per_s_batch${SAMPLING.batch}`;
  const measuredPeer = cifarPeer !== null && embeddedPeer !== null;
  const report = {
    benchmark: "train",
    quick: QUICK,
    node_version: process.version,
    torch_version: torch.torchVersion,
    num_threads: torch.getNumThreads(),
    batch: BATCH,
    step: `forward + backward + clipGradNorm(${GRAD_CLIP}) + AdamW step, epsilon-MSE (denoisingLoss, DDPM scheduler, random timesteps), train mode`,
    evaluation: "one UNet forward under noGrad, eval mode, timestep 500",
    sampling: `DDIM, ${SAMPLING.steps} steps, eta 0, batch ${SAMPLING.batch}, from noise to samples in [-1, 1], embedded model; ours: generate() with the paper's uniform timesteps; peer: DDIMPipeline's loop with diffusers' leading timesteps (same number of UNet calls)`,
    statistic: measuredPeer
      ? "median over timed repeats after warm-up; ours and the peer's repeats alternate; ratios are medians of the per-round ratios"
      : "median over timed repeats after warm-up",
    flop_convention:
      "macs_batch1: analytic MACs of one forward at batch 1 (conv k*k*Cin/groups*Cout*Hout*Wout + bias; linear in*out + out per token; attention 2*L*L*C; group norm 2*numel); training FLOPs = 3 * 2 * MACs * batch (backward ~2x forward, 2 FLOPs per MAC); evaluation FLOPs = 2 * MACs * batch",
    machine,
    cifar10: { source: "google/ddpm-cifar10-32 config, random weights (seed 0)", ...cifar10.ours },
    embedded: { source, ...embedded.ours, [samplingKey]: sampling.ours },
    peer: measuredPeer
      ? {
          source:
            "bench/peer_unet.py, measured in this run: diffusers 0.17's UNet2DModel, train_unconditional step and DDIMPipeline loop re-implemented on Debian's python3-torch (same libtorch, same threads), random weights for cifar10 (seed 0), the same weights for the embedded model",
          torch_version: cifarPeer.info.torch_version,
          python_version: cifarPeer.info.python_version,
          num_threads: cifarPeer.info.num_threads,
          cifar10: cifar10.peer,
          embedded: { ...embedded.peer, [samplingKey]: sampling.peer },
        }
      : {
          source: "NOTES.md, 'The peer on this machine': diffusers 0.17 UNet2DModel on PyTorch 1.13, 2 threads; not measured in this run (python3-torch is not installed: sh scripts/setup.sh --bench installs it)",
          cifar10: NOTES_PEER_CIFAR10,
        },
    // > 1 means we are faster: images/s ours/peer, milliseconds peer/ours.
    ratio_vs_peer: measuredPeer
      ? {
          source: "this run: median over alternating rounds of ours/peer throughput",
          cifar10: cifar10.ratio,
          embedded: { ...embedded.ratio, [samplingKey]: sampling.ratio },
        }
      : {
          source: "this run's cifar10 figures against the NOTES.md peer figures (not measured together)",
          cifar10: {
            train_images_per_s: round(cifar10.ours.train_images_per_s / NOTES_PEER_CIFAR10.train_images_per_s),
            eval_ms_batch1: round(NOTES_PEER_CIFAR10.eval_ms_batch1 / cifar10.ours.eval_ms_batch1),
            eval_ms_batch8: round(NOTES_PEER_CIFAR10.eval_ms_batch8 / cifar10.ours.eval_ms_batch8),
          },
        },
    // Tensors the benchmark left alive: 0 means nothing leaked.
    live_tensors_after: torch.memory().numTensors,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
