// The gradient loop of Diff-Pruning (and the Taylor criterion) shared among processes: each takes
// its share of the calibration batch, the gradients are summed across them, and the losses, T'
// and every group's importance scores are those of one process.
import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { load } from "../../src/io/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { cliMain, freePort, start, workerScript } from "./helpers.js";

interface Result {
  losses: number[];
  tPrime: number;
  scores: number[][];
  taylorScores: number[][];
}

async function run(worldSize: number): Promise<Result[]> {
  const port = await freePort();
  const procs = Array.from({ length: worldSize }, (_, rank) =>
    start([workerScript], { DIFFPRUNE_TEST_WORKER: JSON.stringify({ scenario: "gradients", rank, worldSize, port, timeout: 60_000, model: fixture("unet-tiny") }) }),
  );
  const exits = await Promise.all(procs.map((p) => p.done));
  return exits.map((e, rank) => {
    assert.equal(e.code, 0, `rank ${rank} failed:\n${e.stderr}`);
    return JSON.parse(e.stdout.trim().split("\n").at(-1)!) as Result;
  });
}

function assertSameScores(a: number[][], b: number[][], what: string): void {
  assert.equal(a.length, b.length);
  a.forEach((scores, g) => {
    assert.equal(scores.length, b[g]!.length);
    // scores are normalised by their mean: relative agreement
    scores.forEach((s, c) => assert.ok(Math.abs(s - b[g]![c]!) <= 1e-4 * Math.max(1, Math.abs(s)), `${what}: group ${g} channel ${c}: ${s} vs ${b[g]![c]}`));
  });
}

test("the distributed gradient loop gives one process's losses, T' and importance scores", { timeout: 240_000 }, async () => {
  const [reference] = await run(1);
  assert.equal(reference!.losses.length, reference!.tPrime + 1);
  for (const worldSize of [2, 3]) {
    const results = await run(worldSize);
    for (const [rank, r] of results.entries()) {
      assert.equal(r.tPrime, reference!.tPrime, `rank ${rank} of ${worldSize}: T'`);
      r.losses.forEach((l, t) => assert.ok(Math.abs(l - reference!.losses[t]!) < 1e-6, `rank ${rank} of ${worldSize}: loss at t=${t} ${l} vs ${reference!.losses[t]}`));
      assertSameScores(r.scores, reference!.scores, `diff-pruning, rank ${rank} of ${worldSize}`);
      assertSameScores(r.taylorScores, reference!.taylorScores, `taylor, rank ${rank} of ${worldSize}`);
    }
  }
});

const scratch = scratchDir("diffprune-dist-prune-");
after(() => rmSync(scratch, { recursive: true, force: true }));

test("prune --nproc-per-node 2 writes the model that one process writes", { timeout: 240_000 }, async () => {
  // unet-tiny with a 20-step schedule: the loop's length, not its early stop, is under test
  const model = join(scratch, "unet-tiny");
  cpSync(fixture("unet-tiny"), model, { recursive: true });
  const schedulerFile = join(model, "scheduler_config.json");
  writeFileSync(schedulerFile, JSON.stringify({ ...JSON.parse(readFileSync(schedulerFile, "utf8")), num_train_timesteps: 20 }));
  const args = (out: string, extra: string[] = []) => [cliMain, "prune", "--model", model, "--method", "diff-pruning", "--ratio", "0.3", "--data", "fashion-mnist", "--calib-batch", "4", "--out", out, "--json", ...extra];
  const one = join(scratch, "one");
  const two = join(scratch, "two");
  const e1 = await start(args(one), {}).done;
  assert.equal(e1.code, 0, e1.stderr);
  const e2 = await start(args(two, ["--nproc-per-node", "2"]), {}).done;
  assert.equal(e2.code, 0, e2.stderr);
  assert.equal(e2.stdout.trim().split("\n").length, 1, "rank 0 alone prints");
  const record = (dir: string) => JSON.parse(readFileSync(join(dir, "pruning.json"), "utf8")) as { history: unknown; layers: unknown; diff_pruning: { t_prime: number; losses: number[] } };
  assert.deepEqual(record(two).history, record(one).history, "the same channels removed");
  assert.equal(record(two).diff_pruning.t_prime, record(one).diff_pruning.t_prime);
  record(two).diff_pruning.losses.forEach((l, t) => assert.ok(Math.abs(l - record(one).diff_pruning.losses[t]!) < 1e-6, `loss at t=${t}`));
  const w1 = load(readFileSync(join(one, "diffusion_pytorch_model.safetensors")));
  const w2 = load(readFileSync(join(two, "diffusion_pytorch_model.safetensors")));
  // after pruning, the kept weights are copies of the same weights: bit for bit
  for (const [k, t] of w1) assert.deepEqual(w2.get(k)!.toArray(), t.toArray(), k);
  assert.ok(!existsSync(join(scratch, "two.tmp")));
});
