// sample and eval shared among processes: each denoises its share of the initial noise (5 samples:
// shares of 3 and 2), rank 0 gathers and writes; the images and the metrics are one process's.
import assert from "node:assert/strict";
import { cpSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { load, loadFile, saveFile } from "../../src/io/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { cliMain, freePort, start, type Exit } from "./helpers.js";

const scratch = scratchDir("diffprune-dist-sample-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const ok = (e: Exit, what: string): void => {
  assert.equal(e.signal, null, `${what}: killed by ${e.signal}\n${e.stderr}`);
  assert.equal(e.code, 0, `${what}: exit ${e.code}\n${e.stderr}`);
};

test("sample --nproc-per-node 2 writes one process's samples", { timeout: 180_000 }, async () => {
  const args = (out: string, extra: string[] = []) => [cliMain, "sample", "--model", fixture("unet-tiny"), "--out", out, "--num", "5", "--steps", "4", "--seed", "2", "--json", ...extra];
  const one = join(scratch, "one");
  const two = join(scratch, "two");
  ok(await start(args(one), {}).done, "sample");
  const e = await start(args(two, ["--nproc-per-node", "2"]), {}).done;
  ok(e, "sample --nproc-per-node 2");
  assert.equal(e.stdout.trim().split("\n").length, 1, "rank 0 alone prints");
  const a = load(readFileSync(join(one, "samples.safetensors"))).get("samples")!;
  const b = load(readFileSync(join(two, "samples.safetensors"))).get("samples")!;
  assert.deepEqual(b.shape, [5, 1, 16, 16]);
  // Batches of 3 and 2 instead of 5: oneDNN blocks them differently, and the sampler carries
  // float differences on; one process with --batch-size 3 differs from batch 5 by 2.3e-5 too.
  const d = maxAbsDiff(a, b);
  assert.ok(d <= 1e-4, `max |difference| ${d}`);
  assert.deepEqual(readdirSync(two).sort(), readdirSync(one).sort());
});

test("workers started as srun starts them (Slurm's variables, no launcher) join and write one process's samples", { timeout: 180_000 }, async () => {
  const out = join(scratch, "srun");
  const port = String(await freePort());
  const args = [cliMain, "sample", "--model", fixture("unet-tiny"), "--out", out, "--num", "5", "--steps", "4", "--seed", "2", "--json"];
  const tasks = [0, 1].map((rank) =>
    start(args, { SLURM_NTASKS: "2", SLURM_PROCID: String(rank), SLURM_LOCALID: String(rank), SLURM_NTASKS_PER_NODE: "2", MASTER_ADDR: "127.0.0.1", MASTER_PORT: port }),
  );
  const exits = await Promise.all(tasks.map((t) => t.done));
  exits.forEach((e, rank) => ok(e, `task ${rank}`));
  assert.equal(exits[1]!.stdout, "", "rank 1 prints nothing");
  const a = load(readFileSync(join(scratch, "one", "samples.safetensors"))).get("samples")!;
  const b = load(readFileSync(join(out, "samples.safetensors"))).get("samples")!;
  assert.ok(maxAbsDiff(a, b) <= 1e-4, `max |difference| ${maxAbsDiff(a, b)}`);
});

test("eval --nproc-per-node 2 gives one process's SSIM against a reference", { timeout: 180_000 }, async () => {
  // the reference: unet-tiny with its weights perturbed
  const reference = join(scratch, "reference");
  cpSync(fixture("unet-tiny"), reference, { recursive: true });
  const weightsFile = join(reference, "diffusion_pytorch_model.safetensors");
  const weights = loadFile(weightsFile);
  torch.manualSeed(5);
  const perturbed = new Map([...weights].map(([k, t]) => [k, torch.keep(t.add(torch.randnLike(t).mul(0.02)))]));
  saveFile(perturbed, weightsFile);
  const args = (out: string, extra: string[] = []) => [cliMain, "eval", "--model", fixture("unet-tiny"), "--reference", reference, "--ssim", "--num", "5", "--steps", "4", "--out", out, "--json", ...extra];
  const one = join(scratch, "metrics-one.json");
  const two = join(scratch, "metrics-two.json");
  ok(await start(args(one), {}).done, "eval");
  ok(await start(args(two, ["--nproc-per-node", "2"]), {}).done, "eval --nproc-per-node 2");
  const m1 = JSON.parse(readFileSync(one, "utf8")) as { ssim: { mean: number; mse: number; num_samples: number }; sampler: unknown };
  const m2 = JSON.parse(readFileSync(two, "utf8")) as typeof m1;
  assert.equal(m2.ssim.num_samples, 5);
  assert.ok(m1.ssim.mean < 0.999, `the reference differs (SSIM ${m1.ssim.mean})`);
  assert.ok(Math.abs(m2.ssim.mean - m1.ssim.mean) < 1e-6, `SSIM ${m2.ssim.mean} vs ${m1.ssim.mean}`);
  assert.ok(Math.abs(m2.ssim.mse - m1.ssim.mse) < 1e-9, `MSE ${m2.ssim.mse} vs ${m1.ssim.mse}`);
  assert.deepEqual(m2.sampler, m1.sampler);
});
