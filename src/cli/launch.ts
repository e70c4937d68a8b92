// Several processes and machines with torchrun's conventions. `--nproc-per-node N` makes this
// process a launcher: it starts N workers running the same command line (without the launcher's
// flags) with torchrun's environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK,
// LOCAL_WORLD_SIZE), and `--nnodes M --node-rank R --master-addr HOST --master-port P` places
// them among M machines. A process started with those variables already set (by this launcher,
// torchrun, or Slurm's srun) is a worker: it joins the group and runs the command. When a worker
// fails or is killed, the launcher gives the others a moment to report their own error, stops
// the rest, and exits non-zero.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { Option, type Command } from "commander";
import * as torch from "../torch/index.js";
import type { Backend } from "../torch/distributed.js";
import { nonNegativeInt, oneOf, positiveInt, positiveNumber } from "./args.js";

export interface LaunchArgs {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort?: number;
  distTimeout: number;
  distBackend: Backend;
}

/** The launcher's own flags, not passed on to the workers. */
const LAUNCHER_FLAGS = ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"];

/** How long the other workers may take to report their own error after one failed, before they are stopped. */
const GRACE_MS = 10_000;

export function addLaunchOptions(cmd: Command): Command {
  return cmd
    .option("--nproc-per-node <n>", "worker processes on this machine, data-parallel on torch.distributed (threads: cores / n)", positiveInt, 1)
    .option("--nnodes <n>", "machines taking part (each runs the same command with its --node-rank)", positiveInt, 1)
    .option("--node-rank <r>", "this machine's number among --nnodes, 0 is the master", nonNegativeInt, 0)
    .option("--master-addr <host>", "the address of node 0, which serves the rendezvous", "127.0.0.1")
    .option("--master-port <port>", "the rendezvous port on node 0 (default: a free port with one node, else 29500)", positiveInt)
    .option("--dist-timeout <s>", "seconds a rendezvous or a collective may wait for the other processes", positiveNumber, 1800)
    .addOption(new Option("--dist-backend <name>", "c10d backend: gloo (CPU) or nccl (CUDA builds)").argParser(oneOf<Backend>("gloo", "nccl")).default("gloo"));
}

/**
 * Runs `command` as this process's role requires: as a worker of the group its environment
 * describes, alone, or as the launcher of the workers that --nproc-per-node and --nnodes ask for.
 */
export async function runLaunched(args: LaunchArgs, command: () => void | Promise<void>): Promise<void> {
  const env = torch.distributed.envRendezvous();
  const timeout = Math.round(args.distTimeout * 1000);
  if (env) {
    if (args.nprocPerNode > 1 || args.nnodes > 1)
      throw new Error(`this process was started as rank ${env.rank} of ${env.worldSize} (WORLD_SIZE, RANK are set) and also given --nproc-per-node/--nnodes: use one launcher, not both`);
    if (process.env.DIFFPRUNE_LAUNCHER_PID) torch.distributed.exitWithParent(Number(process.env.DIFFPRUNE_LAUNCHER_PID));
    torch.distributed.initFromEnv({ backend: args.distBackend, timeout });
    try {
      await command();
    } finally {
      torch.distributed.destroyProcessGroup();
    }
    return;
  }
  if (args.nodeRank >= args.nnodes) throw new RangeError(`--node-rank ${args.nodeRank} must be below --nnodes ${args.nnodes}`);
  if (args.nprocPerNode === 1 && args.nnodes === 1) return command();
  const port = args.masterPort ?? (args.nnodes === 1 ? await freePort(args.masterAddr) : 29500);
  await launch({ ...args, masterPort: port });
}

/** A port free on `host` a moment ago (the OS's pick), for a one-machine rendezvous. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err) => reject(new Error(`no free port on ${host} for the rendezvous (${err.message}): give --master-port`)));
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 29500));
    });
  });
}

/** The command line without the launcher's flags (`--flag value` and `--flag=value`). */
export function workerArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (LAUNCHER_FLAGS.includes(a)) i++;
    else if (!LAUNCHER_FLAGS.some((f) => a.startsWith(`${f}=`))) out.push(a);
  }
  return out;
}

interface Worker {
  rank: number;
  child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
}

const describeExit = (w: Worker): string =>
  w.exit?.signal ? `was killed by ${w.exit.signal}` : `exited with code ${w.exit?.code ?? "?"}`;

/** Starts this node's workers and waits for them; rejects when any fails. */
function launch(args: LaunchArgs & { masterPort: number }): Promise<void> {
  const n = args.nprocPerNode;
  const worldSize = n * args.nnodes;
  const threads = process.env.DIFFPRUNE_NUM_THREADS || String(torch.distributed.threadsPerWorker(n));
  const argv = [...process.execArgv, process.argv[1]!, ...workerArgv(process.argv.slice(2))];
  const workers: Worker[] = [];
  for (let local = 0; local < n; local++) {
    const rank = args.nodeRank * n + local;
    const env = {
      ...process.env,
      MASTER_ADDR: args.masterAddr,
      MASTER_PORT: String(args.masterPort),
      WORLD_SIZE: String(worldSize),
      RANK: String(rank),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(n),
      GROUP_RANK: String(args.nodeRank),
      DIFFPRUNE_NUM_THREADS: threads,
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
      DIFFPRUNE_LAUNCHER_PID: String(process.pid),
    };
    workers.push({ rank, child: spawn(process.execPath, argv, { env, stdio: "inherit" }), exit: null });
  }
  return new Promise((resolve, reject) => {
    let failed: Worker | null = null;
    let stopping: NodeJS.Timeout | null = null;
    const alive = () => workers.filter((w) => w.exit === null);
    const stop = (signal: NodeJS.Signals) => alive().forEach((w) => w.child.kill(signal));
    const forward = (signal: NodeJS.Signals) => () => {
      failed ??= workers[0]!;
      stop(signal);
    };
    const onSignal = { SIGINT: forward("SIGINT"), SIGTERM: forward("SIGTERM") };
    process.on("SIGINT", onSignal.SIGINT);
    process.on("SIGTERM", onSignal.SIGTERM);
    for (const w of workers) {
      w.child.on("exit", (code, signal) => {
        w.exit = { code, signal };
        if ((code !== 0 || signal !== null) && failed === null) {
          failed = w;
          // the others see the broken group at their next collective and say so; then stop them
          stopping = setTimeout(() => {
            stop("SIGTERM");
            stopping = setTimeout(() => stop("SIGKILL"), 5000);
          }, GRACE_MS);
        }
        if (alive().length > 0) return;
        if (stopping) clearTimeout(stopping);
        process.off("SIGINT", onSignal.SIGINT);
        process.off("SIGTERM", onSignal.SIGTERM);
        if (failed === null) return resolve();
        const f: Worker = failed;
        reject(new Error(`worker rank ${f.rank} of ${worldSize} (pid ${f.child.pid}) ${describeExit(f)}; this node's other workers were stopped (their own messages are above)`));
      });
    }
  });
}
