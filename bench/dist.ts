// torch.distributed benchmark on this machine (Gloo over loopback): all-reduce bandwidth at
// 1-64 MiB between 2 processes; fine-tuning throughput of the embedded Fashion-MNIST UNet
// (models/fashion-mnist-32.config.json, random weights) as 1 process x 2 threads against
// 2 processes x 1 thread with the same global batch, through the Trainer's DDP path; and DDP's
// overhead per step (the gradient all-reduce). The three layouts (1x1 as the baseline) run in
// turn, ROUNDS times, and each reports its median: a machine whose load changes during the run
// shifts them all alike. Prints one JSON object to stdout, with the load average at the start
// and end; progress goes to stderr. BENCH_QUICK=1 cuts the repeats (a smoke run, not a measurement).
// The script is its own worker: started with DIFFPRUNE_BENCH_ROLE set, it runs one role.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import * as torch from "../src/torch/index.js";
import { Uint8ImageDataset } from "../src/data/index.js";
import { UNet2DModel } from "../src/models/index.js";
import { DDPMScheduler, Trainer } from "../src/diffusion/index.js";
import { packageRoot } from "../src/io/index.js";
import { median, progress, round } from "./common.js";
import { freePort } from "../src/cli/launch.js";

const QUICK = process.env.BENCH_QUICK === "1";
const SIZES_MIB = [1, 4, 16, 64];
const BATCH = 16;
const REPEATS = QUICK ? { allReduce: 3, warmupSteps: 1, steps: 2, overhead: 3, rounds: 1 } : { allReduce: 15, warmupSteps: 3, steps: 10, overhead: 15, rounds: 3 };

interface Role {
  role: "allreduce" | "train";
  rank: number;
  worldSize: number;
  port: number;
}

// ---- workers ----

function allReduceRole(): Record<string, unknown> {
  const rows: Record<string, unknown>[] = [];
  const dist = torch.distributed;
  const n = dist.getWorldSize();
  for (const mib of SIZES_MIB) {
    const bytes = mib * 1024 * 1024;
    const t = torch.ones([bytes / 4]);
    const times: number[] = [];
    for (let i = 0; i < REPEATS.allReduce + 2; i++) {
      dist.barrier();
      const t0 = performance.now();
      dist.allReduce([t], "sum", { bucketBytes: bytes });
      if (i >= 2) times.push((performance.now() - t0) / 1000);
    }
    t.dispose();
    const s = median(times);
    // nccl-tests' convention: algbw = size / time, busbw = algbw * 2 (n - 1) / n (what each link carries)
    rows.push({ mib, ms: round(s * 1000, 2), algbw_gb_s: round(bytes / s / 1e9, 3), busbw_gb_s: round(((bytes / s) * 2 * (n - 1)) / n / 1e9, 3) });
  }
  return { all_reduce: rows };
}

function embeddedModel(): UNet2DModel {
  const config = JSON.parse(readFileSync(join(packageRoot(), "models", "fashion-mnist-32.config.json"), "utf8")) as Record<string, unknown>;
  torch.manualSeed(0);
  return torch.noGrad(() => new UNet2DModel(config));
}

function randomImages(count: number): Uint8ImageDataset {
  const data = new Uint8Array(count * 32 * 32);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return new Uint8ImageDataset(data, { count, channels: 1, height: 32, width: 32 }, { sampleSize: 32, channels: 1 });
}

/** Training steps through the Trainer (sharded when in a group); rank 0 reports. */
function trainRole(): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "diffprune-bench-dist-"));
  const model = embeddedModel();
  const trainer = new Trainer(model, new DDPMScheduler(), randomImages(BATCH * 8), dir, { batchSize: BATCH, steps: 1_000_000, warmupSteps: 0 });
  const dist = torch.distributed;
  const group = dist.inGroup();
  try {
    for (let i = 0; i < REPEATS.warmupSteps; i++) trainer.trainStep();
    if (group) dist.barrier();
    const t0 = performance.now();
    for (let i = 0; i < REPEATS.steps; i++) trainer.trainStep();
    if (group) dist.barrier();
    const stepS = (performance.now() - t0) / 1000 / REPEATS.steps;
    const out: Record<string, unknown> = { step_ms: round(stepS * 1000, 1), images_per_s: round(BATCH / stepS, 2), threads: torch.getNumThreads() };
    if (group) {
      // the step's collective: every gradient (and the loss) averaged in 25 MiB buckets
      const grads = model.parameters().map((p) => torch.zerosLike(p));
      const times: number[] = [];
      for (let i = 0; i < REPEATS.overhead + 2; i++) {
        dist.barrier();
        const t1 = performance.now();
        dist.allReduce(grads, "avg");
        if (i >= 2) times.push((performance.now() - t1) / 1000);
      }
      torch.dispose(grads);
      const s = median(times);
      out.gradient_all_reduce_ms = round(s * 1000, 2);
      out.gradient_mib = round(model.parameters().reduce((a, p) => a + p.numel * 4, 0) / 2 ** 20, 2);
      out.ddp_overhead_share_of_step = round(s / stepS, 4);
    }
    return out;
  } finally {
    trainer.dispose();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the parent: starts the workers and collects rank 0's line ----

/** Runs `role` in `worldSize` processes of `threads` threads each; rank 0's JSON. */
async function runRole(role: Role["role"], worldSize: number, threads: number): Promise<Record<string, unknown>> {
  const port = await freePort();
  const script = fileURLToPath(import.meta.url);
  const runs = Array.from({ length: worldSize }, (_, rank) => {
    const env = { ...process.env, DIFFPRUNE_NUM_THREADS: String(threads), DIFFPRUNE_BENCH_ROLE: JSON.stringify({ role, rank, worldSize, port } satisfies Role) };
    const child = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const limit = setTimeout(() => child.kill("SIGKILL"), 600_000);
    return new Promise<string>((resolve, reject) =>
      child.on("close", (code, signal) => {
        clearTimeout(limit);
        if (code === 0) resolve(out);
        else reject(new Error(`bench worker ${role} rank ${rank} failed (${signal ?? `exit ${code}`})`));
      }),
    );
  });
  const outs = await Promise.all(runs);
  return JSON.parse(outs[0]!.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

/** The run whose images/s is the median of `runs`. */
const medianRun = (runs: Record<string, unknown>[]): Record<string, unknown> => {
  const sorted = [...runs].sort((a, b) => (a.images_per_s as number) - (b.images_per_s as number));
  return { ...sorted[(sorted.length - 1) >> 1]!, all_images_per_s: runs.map((r) => r.images_per_s) };
};

async function parent(): Promise<void> {
  const cores = availableParallelism();
  const loadBefore = loadavg().map((x) => round(x, 2));
  progress("all-reduce, 2 processes");
  const allReduce = await runRole("allreduce", 2, 1);
  const layouts = { "1_process_x_1_thread": [1, 1], "1_process_x_2_threads": [1, 2], "2_processes_x_1_thread": [2, 1] } as const;
  const runs: Record<string, Record<string, unknown>[]> = {};
  for (let round = 0; round < REPEATS.rounds; round++)
    for (const [name, [processes, threads]] of Object.entries(layouts)) {
      progress(`fine-tuning, ${name.replaceAll("_", " ")} (round ${round + 1} of ${REPEATS.rounds})`);
      (runs[name] ??= []).push(await runRole("train", processes, threads));
    }
  const finetune = Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, medianRun(r)]));
  const ips = (name: keyof typeof layouts) => finetune[name]!.images_per_s as number;
  const result = {
    machine: { cores, backend: "gloo", transport: "loopback TCP", torch: torch.torchVersion, load_average_before: loadBefore, load_average_after: loadavg().map((x) => round(x, 2)) },
    ...allReduce,
    finetune: {
      model: "models/fashion-mnist-32.config.json (random weights)",
      global_batch: BATCH,
      ...finetune,
      speedup_2x1_over_1x2: round(ips("2_processes_x_1_thread") / ips("1_process_x_2_threads"), 3),
      speedup_2x1_over_1x1: round(ips("2_processes_x_1_thread") / ips("1_process_x_1_thread"), 3),
    },
    quick: QUICK,
  };
  console.log(JSON.stringify(result, null, 2));
}

const roleSpec = process.env.DIFFPRUNE_BENCH_ROLE;
if (roleSpec) {
  const r = JSON.parse(roleSpec) as Role;
  if (r.worldSize > 1) torch.distributed.initProcessGroup({ rank: r.rank, worldSize: r.worldSize, masterPort: r.port, timeout: 300_000 });
  const out = r.role === "allreduce" ? allReduceRole() : trainRole();
  if (r.rank === 0) console.log(JSON.stringify(out));
  if (torch.distributed.isInitialized()) torch.distributed.destroyProcessGroup();
} else {
  await parent();
}
