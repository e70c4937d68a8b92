// Engine benchmark: conv2d forward and forward+backward, matmul, and the per-op call overhead,
// against PyTorch (bench/engine_torch.py: same libtorch, same thread count) when Debian's
// python3-torch is importable. Our repeats and PyTorch's alternate, so drift on a noisy machine
// hits both alike. Prints one JSON object to stdout; progress goes to stderr.
import * as torch from "../src/torch/index.js";
import { hasPythonTorch, median, PeerProcess, peerScript, progress, round, timeRepeat, type Sample } from "./common.js";

// Keep these in step with bench/engine_torch.py.
const REPEATS = 7;
const CONV = { n: 16, cin: 64, cout: 64, h: 32, w: 32, k: 3 } as const;
const MATMUL_N = 1024;
const OPS_PER_BLOCK = 1000;

const CONV_FWD_FLOPS = 2 * CONV.n * CONV.cout * CONV.h * CONV.w * CONV.cin * CONV.k * CONV.k;
// Backward = input grad + weight grad, each as costly as the forward.
const CONV_FWD_BWD_FLOPS = 3 * CONV_FWD_FLOPS;
const MATMUL_FLOPS = 2 * MATMUL_N ** 3;

const PEER_SCRIPT = peerScript("engine_torch.py");

interface Bench {
  /** Its name in engine_torch.py, and the key of PyTorch's figure. */
  peer: string;
  peerKey: string;
  warmup: number;
  iters: number;
  /** GFLOP/s (higher is better) or microseconds per op (lower is better). */
  unit: "gflops" | "us_per_op";
  /** FLOPs or ops per call. */
  work: number;
  /** Our variants: output key -> one call. */
  ours: Record<string, () => void>;
}

const figure = (b: Bench, seconds: number): number =>
  b.unit === "gflops" ? b.work / seconds / 1e9 : (seconds / b.work) * 1e6;

/** Inputs live outside every scope (keep) until the run ends; each call's temporaries die in tidy. */
function makeBenches(): { benches: Bench[]; inputs: torch.Tensor[] } {
  const k = <T extends torch.Tensor>(t: T): T => torch.keep(t);
  const x = k(torch.randn([CONV.n, CONV.cin, CONV.h, CONV.w]));
  // Scaled so outputs stay O(1); tidy frees the unscaled draw.
  const w = k(torch.tidy(() => torch.randn([CONV.cout, CONV.cin, CONV.k, CONV.k]).mul(0.05)));
  const b = k(torch.zeros([CONV.cout]));
  const xg = k(x.clone()).requiresGrad_();
  const wg = k(w.clone()).requiresGrad_();
  const upstream = k(torch.ones([CONV.n, CONV.cout, CONV.h, CONV.w]));
  const ma = k(torch.randn([MATMUL_N, MATMUL_N]));
  const mb = k(torch.randn([MATMUL_N, MATMUL_N]));
  const a1 = k(torch.ones([1]));
  const b1 = k(torch.ones([1]));

  const benches: Bench[] = [
    {
      peer: "conv_fwd", peerKey: "conv2d_fwd_gflops", warmup: 3, iters: 10, unit: "gflops", work: CONV_FWD_FLOPS,
      ours: { conv2d_fwd_gflops: () => torch.tidy(() => void torch.conv2d(x, w, b, { padding: 1 })) },
    },
    {
      peer: "conv_fwd_bwd", peerKey: "conv2d_fwd_bwd_gflops", warmup: 2, iters: 4, unit: "gflops", work: CONV_FWD_BWD_FLOPS,
      ours: {
        conv2d_fwd_bwd_gflops: () => {
          torch.tidy(() => torch.conv2d(xg, wg, b, { padding: 1 }).backward(upstream));
          // Fresh gradients each step, as optimizer.zero_grad(set_to_none=True) leaves them.
          torch.zeroGrad([xg, wg]);
        },
      },
    },
    {
      peer: "matmul", peerKey: "matmul_gflops", warmup: 3, iters: 20, unit: "gflops", work: MATMUL_FLOPS,
      ours: { matmul_gflops: () => torch.tidy(() => void ma.matmul(mb)) },
    },
    {
      peer: "add", peerKey: "add_us_per_call", warmup: 50, iters: 100, unit: "us_per_op", work: OPS_PER_BLOCK,
      ours: {
        // Our normal usage: many small ops inside one tidy().
        add_us_per_call_tidy: () =>
          torch.tidy(() => {
            for (let i = 0; i < OPS_PER_BLOCK; i++) a1.add(b1);
          }),
        // Outside any scope each result also goes through the FinalizationRegistry backstop.
        add_dispose_us_per_call: () => {
          for (let i = 0; i < OPS_PER_BLOCK; i++) a1.add(b1).dispose();
        },
      },
    },
  ];
  return { benches, inputs: [x, w, b, xg, wg, upstream, ma, mb, a1, b1] };
}

interface PeerInfo {
  torch_version: string;
  python_version: string;
  num_threads: number;
}

async function main(): Promise<void> {
  const threads = torch.getNumThreads();
  const started = hasPythonTorch() ? await PeerProcess.start<PeerInfo>(PEER_SCRIPT, ["--threads", String(threads)]) : null;
  const { benches, inputs } = makeBenches();

  const ours: Record<string, number> = {};
  const pytorch: Record<string, number> = {};
  // Median over repeats of ours/PyTorch, each pair measured back to back.
  const ratio: Record<string, number> = {};
  const faults: { ours: Record<string, number>; pytorch: Record<string, number> } = { ours: {}, pytorch: {} };
  for (const bench of benches) {
    progress(`${bench.peer}${started === null ? "" : " (interleaved with PyTorch)"}`);
    for (const fn of Object.values(bench.ours)) timeRepeat(fn, bench.warmup);
    await started?.peer.time(bench.peer, bench.warmup);
    const oursRuns: Record<string, Sample[]> = {};
    const peerRuns: Sample[] = [];
    for (let r = 0; r < REPEATS; r++) {
      for (const [key, fn] of Object.entries(bench.ours)) (oursRuns[key] ??= []).push(timeRepeat(fn, bench.iters));
      if (started !== null) peerRuns.push(await started.peer.time(bench.peer, bench.iters));
    }
    // Raw per-repeat figures on stderr, to judge the noise.
    const fmt = (runs: Sample[]): string => runs.map((s) => figure(bench, s.seconds).toPrecision(3)).join(" ");
    for (const [key, runs] of Object.entries(oursRuns)) progress(`  ours ${key}: ${fmt(runs)}`);
    if (started !== null) progress(`  pytorch ${bench.peerKey}: ${fmt(peerRuns)}`);

    const fig = (runs: Sample[]): number => round(figure(bench, median(runs.map((s) => s.seconds))));
    // Per conv or matmul call; per op for add (a call there is a block of ops).
    const perOp = bench.unit === "us_per_op" ? bench.work : 1;
    const faultsPerCall = (runs: Sample[]): number => round(median(runs.map((s) => s.faults)) / perOp, 3);
    for (const [key, runs] of Object.entries(oursRuns)) {
      ours[key] = fig(runs);
      faults.ours[key] = faultsPerCall(runs);
      if (started !== null)
        ratio[key] = round(median(runs.map((s, r) => figure(bench, s.seconds) / figure(bench, peerRuns[r]!.seconds))));
    }
    if (started !== null) {
      pytorch[bench.peerKey] = fig(peerRuns);
      faults.pytorch[bench.peerKey] = faultsPerCall(peerRuns);
    }
  }
  started?.peer.close();
  torch.dispose(inputs);

  const report = {
    benchmark: "engine",
    node_version: process.version,
    torch_version: torch.torchVersion,
    num_threads: threads,
    repeats: REPEATS,
    statistic: "median over repeats after warm-up; ours and PyTorch repeats alternate",
    flop_convention:
      "conv fwd = 2*N*Cout*H*W*Cin*kH*kW; conv fwd+bwd = 3x fwd (input grad + weight grad; bias grad not counted); matmul = 2*n^3",
    shapes: {
      conv2d: `x [${CONV.n}, ${CONV.cin}, ${CONV.h}, ${CONV.w}], w [${CONV.cout}, ${CONV.cin}, ${CONV.k}, ${CONV.k}], bias, padding 1, float32`,
      conv2d_backward: "grads for x and w from a fixed upstream gradient of ones; grads reset to null each step",
      matmul: `[${MATMUL_N}, ${MATMUL_N}] @ [${MATMUL_N}, ${MATMUL_N}], float32`,
      add: `1-element float32 tensors; blocks of ${OPS_PER_BLOCK} calls`,
    },
    ours,
    // Tensors the benchmark left alive: 0 means memory stayed flat.
    live_tensors_after: torch.memory().numTensors,
    pytorch: started === null ? null : { ...started.info, ...pytorch },
    ratio_note: "ours/PyTorch; throughputs (gflops) target >= 0.95, overheads (us_per_call) target <= 1",
    ratio: started === null ? null : ratio,
    // Minor page faults per conv/matmul call or per add (median). Fresh pages cost ~20 us each on
    // these VMs, so a run whose large buffers come from mmap each call is several times slower.
    page_faults_per_call: started === null ? { ours: faults.ours } : faults,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
