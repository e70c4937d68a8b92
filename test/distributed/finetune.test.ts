// Data-parallel fine-tuning through the CLI's launcher: the same global batch gives the same
// weights with 1 process, 2 processes, and 2 "nodes" of one process each; a killed worker ends
// the run with messages and a whole checkpoint, from which --resume (with another world size)
// finishes it.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { load, parse } from "../../src/io/index.js";
import { fixture, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { cliMain, freePort, start, type Exit } from "./helpers.js";

const scratch = scratchDir("diffprune-ddp-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const images = tinyImageFolder(join(scratch, "images"));
const model = fixture("unet-tiny");

// lr 1e-4: Adam divides by sqrt(v) + eps, so a weight whose gradient is float noise (~1e-9, from
// summing a batch in another order) moves by a noise-dependent fraction of lr: at lr 1e-3 one
// weight of unet-tiny differed by 4.3e-5 after a single step, at 1e-4 by 2.4e-6 after five.
// --flip: the flips, like the noise and timesteps, are drawn for the global batch.
const finetuneArgs = (out: string, steps: number, extra: string[] = []) => [
  cliMain, "finetune", "--model", model, "--data", `folder:${images}`, "--out", out,
  "--steps", String(steps), "--batch-size", "4", "--warmup", "2", "--lr", "1e-4", "--checkpoint-every", "5", "--seed", "3", "--flip", ...extra,
];

const ok = (e: Exit, what: string): void => {
  assert.equal(e.signal, null, `${what}: killed by ${e.signal} (a hang?)\n${e.stderr}`);
  assert.equal(e.code, 0, `${what}: exit ${e.code}\n${e.stderr}`);
};

/** The checkpoint's model and EMA tensors, and its step. */
function checkpoint(out: string): { step: number; tensors: Map<string, number[]> } {
  const bytes = readFileSync(join(out, "checkpoint.safetensors"));
  const step = (JSON.parse(parse(bytes).metadata.trainer_state!) as { step: number }).step;
  const tensors = new Map<string, number[]>();
  for (const [k, t] of load(bytes)) {
    if (k.startsWith("model.") || k.startsWith("ema.")) tensors.set(k, t.toArray());
    t.dispose();
  }
  return { step, tensors };
}

function maxDiff(a: Map<string, number[]>, b: Map<string, number[]>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let worst = 0;
  for (const [k, x] of a) x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.get(k)![i]!))));
  return worst;
}

const losses = (out: string): number[] =>
  readFileSync(join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { loss: number }).loss);

const single = join(scratch, "single");
test("one process: the reference run", { timeout: 120_000 }, async () => {
  ok(await start(finetuneArgs(single, 5), {}).done, "finetune");
});

test("--nproc-per-node 2 gives the weights of one process with the same global batch", { timeout: 120_000 }, async () => {
  const out = join(scratch, "two");
  const e = await start(finetuneArgs(out, 5, ["--nproc-per-node", "2"]), {}).done;
  ok(e, "finetune --nproc-per-node 2");
  const a = checkpoint(single);
  const b = checkpoint(out);
  assert.equal(b.step, 5);
  const d = maxDiff(a.tensors, b.tensors);
  assert.ok(d <= 1e-5, `max |weight difference| ${d}`);
  losses(out).forEach((l, i) => assert.ok(Math.abs(l - losses(single)[i]!) < 1e-5, `logged loss ${i}: ${l} vs ${losses(single)[i]}`));
  assert.equal(readFileSync(join(out, "train_config.json"), "utf8").includes('"world_size": 2'), true);
  assert.ok(existsSync(join(out, "model", "diffusion_pytorch_model.safetensors")));
  // rank 0 alone reported: one final line on stdout
  assert.equal(e.stdout.trim().split("\n").length, 1, e.stdout);
});

test("two nodes (--nnodes 2, one process each) give the same weights", { timeout: 120_000 }, async () => {
  const out = join(scratch, "nodes");
  const port = String(await freePort());
  const node = (rank: number) => start(finetuneArgs(out, 5, ["--nnodes", "2", "--node-rank", String(rank), "--master-addr", "127.0.0.1", "--master-port", port]), {});
  const [n0, n1] = [node(0), node(1)];
  const exits = await Promise.all([n0.done, n1.done]);
  exits.forEach((e, r) => ok(e, `node ${r}`));
  const d = maxDiff(checkpoint(single).tensors, checkpoint(out).tensors);
  assert.ok(d <= 1e-5, `max |weight difference| ${d}`);
});

test("a global batch that the processes cannot share equally is refused with a message", { timeout: 120_000 }, async () => {
  const out = join(scratch, "odd");
  const e = await start([...finetuneArgs(out, 5, ["--nproc-per-node", "3"])], {}).done;
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /the batch size 4 is not divisible by the 3 processes: --batch-size is the global batch/);
  assert.match(e.stderr, /worker rank \d of 3 \(pid \d+\) exited with code 1/);
});

/** The pids of `parent`'s child processes whose RANK is `rank`. */
function workerPid(parent: number, rank: number): number {
  const children = readdirSync(`/proc/${parent}/task`).flatMap((task) =>
    readFileSync(`/proc/${parent}/task/${task}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number),
  );
  const pid = children.find((pid) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`RANK=${rank}`));
  assert.ok(pid, `no worker with RANK=${rank} among ${children.join(", ")}`);
  return pid;
}

test("a killed worker: the other exits with a message, the launcher fails, the checkpoint is whole, and --resume finishes", { timeout: 240_000 }, async () => {
  const out = join(scratch, "killed");
  const steps = 200;
  const launcher = start(finetuneArgs(out, steps, ["--nproc-per-node", "2", "--dist-timeout", "60"]), {}, 120_000);
  await launcher.waitFor(/checkpoint at step 10\b/);
  const victim = workerPid(launcher.child.pid!, 1);
  process.kill(victim, "SIGKILL");
  const e = await launcher.done;
  assert.equal(e.signal, null, `the launcher hung:\n${e.stderr}`);
  assert.equal(e.code, 1, e.stderr);
  assert.match(e.stderr, /diffprune \(rank 0\): allReduce failed on rank 0 of 2 \(.*\): another process of the group has probably exited or been killed/);
  assert.match(e.stderr, new RegExp(`worker rank 1 of 2 \\(pid ${victim}\\) was killed by SIGKILL`));
  assert.ok(e.ms < 60_000, `took ${e.ms} ms`);
  // the checkpoint on disk is a whole one, at a checkpoint step; nothing half-written beside it
  const saved = checkpoint(out);
  assert.ok(saved.step >= 10 && saved.step < steps && saved.step % 5 === 0, `checkpoint at step ${saved.step}`);
  assert.deepEqual(readdirSync(out).filter((n) => n.endsWith(".tmp")), []);
  assert.ok(!existsSync(join(out, "model")), "model/ is written only by a finished run");
  // resumed with another world size, it finishes where an uninterrupted run ends
  const resumed = await start(finetuneArgs(out, steps, ["--resume"]), {}).done;
  ok(resumed, "finetune --resume");
  assert.match(resumed.stderr, new RegExp(`resuming ${out} at step ${saved.step}`));
  assert.equal(checkpoint(out).step, steps);
  assert.ok(existsSync(join(out, "model", "diffusion_pytorch_model.safetensors")));
  const whole = join(scratch, "uninterrupted");
  ok(await start(finetuneArgs(whole, steps), {}).done, "uninterrupted finetune");
  const d = maxDiff(checkpoint(whole).tensors, checkpoint(out).tensors);
  assert.ok(d <= 1e-4, `max |weight difference| against the uninterrupted run: ${d}`);
});

test("workers do not outlive a launcher killed with SIGKILL", { timeout: 120_000 }, async () => {
  const out = join(scratch, "orphans");
  const launcher = start(finetuneArgs(out, 100_000, ["--nproc-per-node", "2"]), {}, 60_000);
  await launcher.waitFor(/train \[/);
  const workers = [0, 1].map((rank) => workerPid(launcher.child.pid!, rank));
  launcher.child.kill("SIGKILL");
  await launcher.done;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = performance.now() + 10_000;
  while (workers.some(alive) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(workers.filter(alive), [], "workers still running 10 s after their launcher died");
});
