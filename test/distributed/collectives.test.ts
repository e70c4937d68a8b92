// torch.distributed's collectives between real processes on 127.0.0.1 (Gloo over a TCPStore
// rendezvous): their values for 2 and 3 ranks, and a rendezvous or a peer that fails ends every
// process with a message within the timeout instead of a hang.
import assert from "node:assert/strict";
import { test } from "node:test";
import { freePort, start, workerScript } from "./helpers.js";

interface Result {
  rank: number;
  worldSize: number;
  a: number[];
  i: number[];
  bigHead: number[];
  bigTail: number[];
  bigSum: number;
  avg: number[];
  b: number[];
  gathered: number[][];
}

const worker = (spec: object, limitMs = 60_000) => start([workerScript], { DIFFPRUNE_TEST_WORKER: JSON.stringify(spec) }, limitMs);

for (const worldSize of [2, 3]) {
  test(`collectives' values with ${worldSize} processes`, { timeout: 90_000 }, async () => {
    const port = await freePort();
    const procs = Array.from({ length: worldSize }, (_, rank) => worker({ scenario: "collectives", rank, worldSize, port, timeout: 30_000 }));
    const exits = await Promise.all(procs.map((p) => p.done));
    const ranks = Array.from({ length: worldSize }, (_, r) => r);
    const sum = (f: (r: number) => number) => ranks.reduce((s, r) => s + f(r), 0);
    for (const [rank, e] of exits.entries()) {
      assert.equal(e.code, 0, `rank ${rank} failed:\n${e.stderr}`);
      const r = JSON.parse(e.stdout.trim().split("\n").at(-1)!) as Result;
      assert.equal(r.rank, rank);
      assert.equal(r.worldSize, worldSize);
      assert.deepEqual(r.a, [sum((q) => q + 1), sum((q) => 2 * q), -sum((q) => q)]);
      assert.deepEqual(r.i, [sum((q) => q), 10 * worldSize]);
      // 300k floats in 1 MiB buckets: element k is sum over ranks of (k + 1000 q)
      assert.deepEqual(r.bigHead, [0, 1, 2].map((k) => worldSize * k + 1000 * sum((q) => q)));
      assert.deepEqual(r.bigTail, [299_997, 299_998, 299_999].map((k) => worldSize * k + 1000 * sum((q) => q)));
      assert.equal(r.bigSum, worldSize * ((299_999 * 300_000) / 2) + 300_000 * 1000 * sum((q) => q));
      const mean = sum((q) => q) / worldSize;
      r.avg.forEach((v, k) => assert.ok(Math.abs(v - [mean, 1, 4 * mean][k]!) < 1e-6, `avg[${k}] = ${v}`));
      assert.deepEqual(r.b, [1, 1, 1, 1].map(() => worldSize - 1), "broadcast from the last rank");
      assert.deepEqual(r.gathered, ranks.map((q) => [q, q * q]));
    }
  });
}

test("a world size never reached fails with a message within the timeout", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const e = await worker({ scenario: "collectives", rank: 0, worldSize: 2, port, timeout: 3000 }).done;
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /initProcessGroup: rank 0 of 2 could not join the group at 127\.0\.0\.1:\d+ within 3\.0 s \(only 1 of 2 processes joined the rendezvous\).*all 2 processes start/);
  assert.ok(e.ms < 3000 + 5000, `took ${e.ms} ms`);
});

test("a wrong port (nobody listening) fails with a message within the timeout", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const e = await worker({ scenario: "collectives", rank: 1, worldSize: 2, port, timeout: 3000 }).done;
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /initProcessGroup: rank 1 of 2 could not join the group at 127\.0\.0\.1:\d+ within 3\.0 s .*check that rank 0 runs and listens at 127\.0\.0\.1:\d+ \(MASTER_ADDR, MASTER_PORT\)/);
  assert.ok(e.ms < 3000 + 5000, `took ${e.ms} ms`);
});

test("a peer that exits makes the others' collective fail with a message, not hang", { timeout: 90_000 }, async () => {
  const port = await freePort();
  const timeout = 20_000;
  const procs = [0, 1, 2].map((rank) => worker({ scenario: "die", rank, worldSize: 3, port, timeout }));
  const exits = await Promise.all(procs.map((p) => p.done));
  assert.equal(exits[1]!.code, 3);
  for (const rank of [0, 2]) {
    const e = exits[rank]!;
    assert.equal(e.signal, null, `rank ${rank} was killed by the time limit (a hang):\n${e.stderr}`);
    const r = JSON.parse(e.stdout.trim().split("\n").at(-1)!) as { error: string | null; ms: number };
    assert.ok(r.error, `rank ${rank}'s all-reduce succeeded without rank 1`);
    assert.match(r.error, new RegExp(`allReduce failed on rank ${rank} of 3 .*another process of the group has probably exited`));
    assert.ok(r.ms < timeout + 5000, `rank ${rank} took ${r.ms} ms to notice`);
  }
});

test("a peer that is alive but never joins the collective: the others fail after the timeout", { timeout: 90_000 }, async () => {
  const port = await freePort();
  const timeout = 3000;
  const procs = [0, 1].map((rank) => worker({ scenario: "stall", rank, worldSize: 2, port, timeout }));
  const [e0] = await Promise.all(procs.map((p) => p.done));
  assert.equal(e0!.signal, null, `rank 0 hung:\n${e0!.stderr}`);
  const r = JSON.parse(e0!.stdout.trim().split("\n").at(-1)!) as { error: string | null; ms: number };
  assert.ok(r.error, "the all-reduce succeeded without rank 1");
  assert.match(r.error, /allReduce failed on rank 0 of 2 .*did not reach this allReduce within the timeout \(3\.0 s\)/);
  assert.ok(r.ms >= timeout - 500 && r.ms < timeout + 5000, `gave up after ${r.ms} ms`);
});
