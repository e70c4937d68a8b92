// torch.distributed: one process group per process over libtorch's c10d (a TCPStore rendezvous,
// Gloo on CPU, NCCL on a CUDA build), with PyTorch's names and torchrun's environment variables.
// Collectives block until every rank has taken part, or fail with a DistributedError after the
// group's timeout (at once when a peer's connection closes): nothing waits forever.
import { availableParallelism } from "node:os";
import { native, type Handle } from "./native.js";
import { Tensor } from "./tensor.js";

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg";

/** PyTorch's default process-group timeout (30 minutes). */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
/** DDP's default bucket size (bucket_cap_mb = 25). */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;


/** A rendezvous or a collective that failed: a peer died, a timeout passed, an address was wrong. */
export class DistributedError extends Error {
  override name = "DistributedError";
}

export interface InitOptions {
  backend?: Backend;
  rank: number;
  worldSize: number;
  /** Rank 0's address, where its TCPStore listens (default 127.0.0.1). */
  masterAddr?: string;
  /** The TCPStore's port (default 29500, torchrun's). */
  masterPort?: number;
  /** Milliseconds any rendezvous or collective may wait (default 30 minutes). */
  timeout?: number;
}

interface GroupState {
  backend: Backend;
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeout: number;
}

let state: GroupState | null = null;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const nativeMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split("\n")[0]!.replace(/^dist\w+: /, "");

/**
 * Joins the default process group: rank 0 serves a TCPStore at masterAddr:masterPort, every rank
 * connects to it, and returns once all `worldSize` ranks have (torch.distributed.init_process_group).
 */
export function initProcessGroup(o: InitOptions): void {
  const s: GroupState = {
    backend: o.backend ?? "gloo",
    rank: o.rank,
    worldSize: o.worldSize,
    masterAddr: o.masterAddr ?? "127.0.0.1",
    masterPort: o.masterPort ?? 29500,
    timeout: o.timeout ?? DEFAULT_TIMEOUT_MS,
  };
  if (s.backend !== "gloo" && s.backend !== "nccl") throw new RangeError(`initProcessGroup: backend must be "gloo" or "nccl", got ${JSON.stringify(s.backend)}`);
  if (!Number.isSafeInteger(s.worldSize) || s.worldSize < 1) throw new RangeError(`initProcessGroup: worldSize must be a positive integer, got ${s.worldSize}`);
  if (!Number.isSafeInteger(s.rank) || s.rank < 0 || s.rank >= s.worldSize) throw new RangeError(`initProcessGroup: rank must be an integer in 0..${s.worldSize - 1}, got ${s.rank}`);
  if (!Number.isSafeInteger(s.masterPort) || s.masterPort < 1 || s.masterPort > 65535) throw new RangeError(`initProcessGroup: masterPort must be in 1..65535, got ${s.masterPort}`);
  if (!Number.isSafeInteger(s.timeout) || s.timeout < 1) throw new RangeError(`initProcessGroup: timeout must be a positive number of milliseconds, got ${s.timeout}`);
  if (state) throw new DistributedError("initProcessGroup: the default process group is already initialized; call destroyProcessGroup() first");
  try {
    native.distInit(s.backend, s.masterAddr, s.masterPort, s.rank, s.worldSize, s.timeout);
  } catch (err) {
    const where = `${s.masterAddr}:${s.masterPort}`;
    const check =
      s.rank === 0
        ? `check that ${where} is this machine's address and the port is free, and that all ${s.worldSize} processes start (WORLD_SIZE)`
        : `check that rank 0 runs and listens at ${where} (MASTER_ADDR, MASTER_PORT), that the port is reachable from here, and that all ${s.worldSize} processes start (WORLD_SIZE)`;
    throw new DistributedError(`initProcessGroup: rank ${s.rank} of ${s.worldSize} could not join the group at ${where} within ${seconds(s.timeout)} (${nativeMessage(err)}); ${check}`);
  }
  state = s;
}

/** Leaves the default group (torch.distributed.destroy_process_group); a no-op when there is none. */
export function destroyProcessGroup(): void {
  native.distDestroy();
  state = null;
}

export const isInitialized = (): boolean => state !== null;

/** Whether this process is in a group of more than one (and so shares its work). */
export const inGroup = (): boolean => state !== null && state.worldSize > 1;

/** Whether this process writes outputs and reports: it runs alone, or it is rank 0. */
export const isMainProcess = (): boolean => state === null || state.rank === 0;

function group(op: string): GroupState {
  if (!state) throw new DistributedError(`${op}: the default process group is not initialized; call initProcessGroup() or initFromEnv() first`);
  return state;
}

export const getRank = (): number => group("getRank").rank;
export const getWorldSize = (): number => group("getWorldSize").worldSize;
export const getBackend = (): Backend => group("getBackend").backend;

/** Runs one collective, its failure turned into a DistributedError saying what to check. */
function collective<T>(op: string, fn: () => T): T {
  const s = group(op);
  try {
    return fn();
  } catch (err) {
    if (err instanceof TypeError) throw err;
    throw new DistributedError(
      `${op} failed on rank ${s.rank} of ${s.worldSize} (${nativeMessage(err)}): another process of the group has probably exited or been killed, ` +
        `or did not reach this ${op} within the timeout (${seconds(s.timeout)}); see that process's own error`,
    );
  }
}

const handles = (ts: readonly Tensor[]): Handle[] => ts.map((t) => t.handle);

export interface BucketOptions {
  /** Bytes per flat buffer (default 25 MiB, DDP's bucket_cap_mb). */
  bucketBytes?: number;
}

/**
 * Reduces `tensors` across all ranks, in place: the sum, or with "avg" the mean. The tensors
 * travel in flat buffers of up to `bucketBytes` each (per dtype and device), all in flight at once.
 */
export function allReduce(tensors: readonly Tensor[], op: ReduceOp = "sum", { bucketBytes = DEFAULT_BUCKET_BYTES }: BucketOptions = {}): void {
  if (op !== "sum" && op !== "avg") throw new RangeError(`allReduce: op must be "sum" or "avg", got ${JSON.stringify(op)}`);
  collective("allReduce", () => native.distAllReduce(handles(tensors), op, bucketBytes));
}

/** Copies rank `src`'s values of `tensors` into every rank's, in place (in flat buckets). */
export function broadcast(tensors: readonly Tensor[], src = 0, { bucketBytes = DEFAULT_BUCKET_BYTES }: BucketOptions = {}): void {
  collective("broadcast", () => native.distBroadcast(handles(tensors), src, bucketBytes));
}

/** Every rank's `tensor` (same shape and dtype on all), in rank order. */
export function allGather(tensor: Tensor): Tensor[] {
  return collective("allGather", () => native.distAllGather(tensor.handle)).map((h) => new Tensor(h));
}

/** Returns when every rank has called barrier(). */
export function barrier(): void {
  collective("barrier", () => native.distBarrier());
}

/**
 * Rank `rank`'s contiguous share of `n` items among `worldSize` (torch.tensor_split's: the first
 * n % worldSize ranks take one more).
 */
export function shardRange(n: number, rank = getRank(), worldSize = getWorldSize()): { start: number; count: number } {
  const base = Math.floor(n / worldSize);
  const extra = n % worldSize;
  return { start: rank * base + Math.min(rank, extra), count: base + (rank < extra ? 1 : 0) };
}

/** What torchrun (or Slurm's srun, or a Kubernetes job) tells a worker. */
export interface EnvRendezvous {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** The CPUs the scheduler gave this worker (Slurm's SLURM_CPUS_PER_TASK), when it says. */
  cpus?: number;
}

/**
 * The rendezvous that torchrun's environment variables describe (MASTER_ADDR, MASTER_PORT,
 * WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE), or else a Slurm step of several tasks
 * (SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS_PER_NODE, with MASTER_ADDR set by the
 * job script and MASTER_PORT defaulting to 29500); null when neither is there.
 */
export function envRendezvous(env: NodeJS.ProcessEnv = process.env): EnvRendezvous | null {
  const set = (name: string): boolean => env[name] !== undefined && env[name] !== "";
  const slurm = !set("WORLD_SIZE") && set("SLURM_PROCID") && Number(env.SLURM_NTASKS) > 1;
  if (!set("WORLD_SIZE") && !slurm) return null;
  const int = (name: string, fallback?: number): number => {
    const text = env[name];
    if (text === undefined || text === "") {
      if (fallback !== undefined) return fallback;
      throw new DistributedError(`WORLD_SIZE is set (${env.WORLD_SIZE}) but ${name} is not: a worker needs MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK, as torchrun sets them`);
    }
    if (!/^\d+$/.test(text)) throw new DistributedError(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const r = slurm
    ? {
        worldSize: int("SLURM_NTASKS"),
        rank: int("SLURM_PROCID"),
        localRank: int("SLURM_LOCALID", 0),
        // "4" when every node runs as many tasks ("4(x2)" is Slurm's list form: the count before it)
        localWorldSize: Number(/^\d+/.exec(env.SLURM_NTASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE ?? "")?.[0] ?? 1),
        masterPort: int("MASTER_PORT", 29500),
        ...(set("SLURM_CPUS_PER_TASK") ? { cpus: int("SLURM_CPUS_PER_TASK") } : {}),
      }
    : { worldSize: int("WORLD_SIZE"), rank: int("RANK"), localRank: 0, localWorldSize: 0, masterPort: 0 };
  if (!slurm) {
    r.localRank = int("LOCAL_RANK", r.rank);
    r.localWorldSize = int("LOCAL_WORLD_SIZE", r.worldSize);
    r.masterPort = int("MASTER_PORT");
  }
  const [world, rank] = slurm ? ["SLURM_NTASKS", "SLURM_PROCID"] : ["WORLD_SIZE", "RANK"];
  if (r.worldSize < 1 || r.rank >= r.worldSize) throw new DistributedError(`${rank} (${r.rank}) must be below ${world} (${r.worldSize})`);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr)
    throw new DistributedError(
      slurm
        ? `a Slurm step of ${r.worldSize} tasks needs MASTER_ADDR, the first node's address: export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) in the job script`
        : `WORLD_SIZE is set (${r.worldSize}) but MASTER_ADDR is not: set it to rank 0's address`,
    );
  return { ...r, masterAddr };
}

/** The intra-op threads a worker gets by default: this machine's cores shared among its local workers. */
export const threadsPerWorker = (localWorldSize: number): number => Math.max(1, Math.floor(availableParallelism() / Math.max(1, localWorldSize)));

/**
 * Joins the group torchrun's variables describe (init_process_group's env://); false, doing
 * nothing, when neither torchrun's nor Slurm's variables are set (see envRendezvous). Without
 * DIFFPRUNE_NUM_THREADS, the worker takes its share of the cores (cores / LOCAL_WORLD_SIZE, or
 * Slurm's SLURM_CPUS_PER_TASK).
 */
export function initFromEnv(o: { backend?: Backend; timeout?: number } = {}, env: NodeJS.ProcessEnv = process.env): boolean {
  const r = envRendezvous(env);
  if (!r) return false;
  if (!env.DIFFPRUNE_NUM_THREADS) native.setNumThreads(r.cpus ?? threadsPerWorker(r.localWorldSize));
  initProcessGroup({ ...o, rank: r.rank, worldSize: r.worldSize, masterAddr: r.masterAddr, masterPort: r.masterPort });
  return true;
}

/**
 * Linux: this process receives SIGTERM when its parent `ppid` (the launcher that started it)
 * dies, even while a computation blocks its event loop; at once when it is already gone.
 */
export function exitWithParent(ppid: number): void {
  if (process.platform === "linux") native.distExitWithParent(ppid);
}
