// How a worker learns its place: torchrun's variables, a Slurm step's, and what is missing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { envRendezvous, shardRange } from "../../src/torch/distributed.js";
import { workerArgv } from "../../src/cli/launch.js";

test("torchrun's variables", () => {
  assert.equal(envRendezvous({}), null);
  assert.deepEqual(envRendezvous({ MASTER_ADDR: "10.0.0.1", MASTER_PORT: "29500", WORLD_SIZE: "8", RANK: "5", LOCAL_RANK: "1", LOCAL_WORLD_SIZE: "4" }), {
    rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: "10.0.0.1", masterPort: 29500,
  });
  assert.throws(() => envRendezvous({ WORLD_SIZE: "2", RANK: "0", MASTER_PORT: "1" }), /MASTER_ADDR is not: set it to rank 0's address/);
  assert.throws(() => envRendezvous({ WORLD_SIZE: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }), /RANK is not/);
  assert.throws(() => envRendezvous({ WORLD_SIZE: "2", RANK: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }), /RANK \(2\) must be below WORLD_SIZE \(2\)/);
  assert.throws(() => envRendezvous({ WORLD_SIZE: "two", RANK: "0", MASTER_ADDR: "h", MASTER_PORT: "1" }), /WORLD_SIZE must be a non-negative integer/);
});

test("a Slurm step of several tasks", () => {
  const slurm = { SLURM_NTASKS: "8", SLURM_PROCID: "6", SLURM_LOCALID: "2", SLURM_NTASKS_PER_NODE: "4(x2)", SLURM_CPUS_PER_TASK: "3" };
  assert.deepEqual(envRendezvous({ ...slurm, MASTER_ADDR: "node01" }), { rank: 6, worldSize: 8, localRank: 2, localWorldSize: 4, masterAddr: "node01", masterPort: 29500, cpus: 3 });
  assert.throws(() => envRendezvous(slurm), /export MASTER_ADDR=\$\(scontrol show hostnames/);
  assert.equal(envRendezvous({ SLURM_NTASKS: "1", SLURM_PROCID: "0" }), null, "a one-task step is not a group");
  // torchrun inside a Slurm job: its variables win
  assert.equal(envRendezvous({ ...slurm, WORLD_SIZE: "2", RANK: "1", MASTER_ADDR: "h", MASTER_PORT: "7" })!.worldSize, 2);
});

test("shares of a batch are torch.tensor_split's", () => {
  assert.deepEqual([0, 1, 2].map((r) => shardRange(5, r, 3)), [{ start: 0, count: 2 }, { start: 2, count: 2 }, { start: 4, count: 1 }]);
  assert.deepEqual([0, 1].map((r) => shardRange(4, r, 2)), [{ start: 0, count: 2 }, { start: 2, count: 2 }]);
});

test("workers get the command line without the launcher's flags", () => {
  assert.deepEqual(
    workerArgv(["finetune", "--nproc-per-node", "2", "--model", "m", "--nnodes=2", "--node-rank", "1", "--master-addr", "h", "--master-port=29501", "--dist-timeout", "60"]),
    ["finetune", "--model", "m", "--dist-timeout", "60"],
  );
});
