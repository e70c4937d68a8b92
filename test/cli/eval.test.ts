// `diffprune eval` end to end: metrics.json holds what the table shows, a model against itself
// is perfectly consistent, FID runs through the shipped classifier, and bad requests fail early
// with one line that says what to do.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { resolveUNet2DConfig, UNet2DModel } from "../../src/models/index.js";
import { evalAction, formatReport } from "../../src/cli/eval.js";
import type { EvalReport } from "../../src/metrics/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-eval-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1", DIFFPRUNE_CACHE: join(scratch, "cache") };
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Metrics {
  model: string;
  reference: string | null;
  params: { model: number; reference: number | null };
  macs: { model: number; reference: number | null };
  sampler: { steps: number; num_samples: number } | null;
  fid: { extractor: string; dataset: string; num_samples: number; num_reference: number; model: number; reference: number | null } | null;
  ssim: { mean: number; mse: number; num_samples: number } | null;
  latency: { model: { batch_size: number; median_ms: number; runs_ms: number[] }[]; reference: unknown[] | null; speedup: Record<string, number> | null } | null;
}
const readMetrics = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Metrics;

describe("diffprune eval", () => {
  test("a model against itself: SSIM 1, MSE 0, equal params, a speed-up per batch size; table and JSON", () => {
    const out = join(scratch, "self", "metrics.json");
    const r = run("eval", "--model", fixture("unet-tiny"), "--reference", fixture("unet-tiny"), "--ssim", "--latency", "--num", "3", "--steps", "2", "--latency-batch", "2", "--repeats", "1", "--out", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    const m = readMetrics(out);
    assert.equal(m.params.model, m.params.reference);
    assert.ok(m.macs.model > 0 && m.macs.reference === m.macs.model, JSON.stringify(m.macs));
    assert.ok(m.ssim && Math.abs(m.ssim.mean - 1) < 1e-6 && m.ssim.mse === 0 && m.ssim.num_samples === 3, JSON.stringify(m.ssim));
    assert.equal(m.fid, null);
    assert.deepEqual(m.latency!.model.map((l) => l.batch_size), [1, 2]);
    assert.deepEqual(Object.keys(m.latency!.speedup!), ["batch1", "batch2"]);
    assert.deepEqual(JSON.parse(r.stdout), m, "--json prints what metrics.json holds");
    const table = formatReport(m as unknown as EvalReport);
    assert.match(table, /SSIM vs reference \(3 samples\)\s+1\.0000/);
    assert.match(table, /ms per evaluation, batch 2\s+[\d.]+\s+[\d.]+\s+speed-up \d+\.\d\dx/);
  });

  test("FID of a 1x32x32 model through the shipped classifier, with cached dataset statistics", () => {
    torch.manualSeed(0);
    const config = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as Record<string, unknown>;
    const small = { ...config, sample_size: 32, block_out_channels: [8, 16], norm_num_groups: 4, down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"] };
    const dir = join(scratch, "model32");
    const model = torch.noGrad(() => new UNet2DModel(resolveUNet2DConfig(small, "test config")));
    model.savePretrained(dir);
    model.dispose();
    const out = join(scratch, "fid.json");
    const r = run("eval", "--model", dir, "--fid", "--num", "8", "--steps", "2", "--data-limit", "200", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    const m = readMetrics(out);
    assert.equal(m.fid!.extractor, "fmnist-classifier");
    assert.equal(m.fid!.dataset, "fashion-mnist");
    assert.deepEqual([m.fid!.num_samples, m.fid!.num_reference], [8, 200]);
    assert.ok(Number.isFinite(m.fid!.model) && m.fid!.model > 0, `FID ${m.fid!.model}`);
    assert.equal(m.fid!.reference, null);
    assert.equal(m.latency, null);
    assert.equal(readdirSync(join(scratch, "cache", "fid-stats")).length, 1, "dataset statistics cached");
  });
});

describe("diffprune eval without metric flags", () => {
  test("does all that apply: SSIM and latency with a reference; no FID for 16x16 images the classifier cannot take", () => {
    const out = join(scratch, "all.json");
    evalAction({ model: fixture("unet-tiny"), reference: fixture("unet-tiny"), num: 2, steps: 2, skip: "uniform", seed: 0, batchSize: 64, data: "fashion-mnist", extractor: "classifier", latencyBatch: 2, repeats: 1, dtype: "float32", out });
    const m = readMetrics(out);
    assert.equal(m.fid, null);
    assert.equal(m.ssim!.num_samples, 2);
    assert.deepEqual(m.latency!.model.map((l) => l.batch_size), [1, 2]);
  });
});

describe("diffprune eval on latent pipelines", () => {
  test("samples are the decoded latents: SSIM between a pipeline and its pruned UNet equals the hand computation", async () => {
    const { pruneModelFolder } = await import("../../src/workflow/index.js");
    const { disposePipeline, generateImages, loadPipeline, samplingScheduler } = await import("../../src/diffusion/index.js");
    const { compareSamples, quantize8bit } = await import("../../src/metrics/index.js");
    const pruned = join(scratch, "ldm-pruned");
    pruneModelFolder({ model: fixture("ldm-tiny"), method: "magnitude", ratio: 0.3, out: pruned });
    const out = join(scratch, "ldm", "metrics.json");
    const r = run("eval", "--model", pruned, "--reference", fixture("ldm-tiny"), "--ssim", "--num", "3", "--steps", "2", "--seed", "4", "--out", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    const m = readMetrics(out);
    // by hand: the same noise (the latents' shape, seed 4), DDIM 2 steps, decoded, 8-bit
    const images = (dir: string) => {
      const p = loadPipeline({ model: dir }, { latent: true });
      torch.manualSeed(4);
      const c = p.model.config;
      const noise = torch.randn([3, c.in_channels, c.sample_size, c.sample_size]);
      const x = quantize8bit(generateImages(p, samplingScheduler(p.scheduler, "ddim"), noise, { numInferenceSteps: 2, eta: 0, skip: "uniform" }));
      disposePipeline(p);
      return x;
    };
    const a = images(pruned);
    const b = images(fixture("ldm-tiny"));
    assert.deepEqual(a.shape, [3, 3, 32, 32], "decoded images, not 16x16 latents");
    const expected = compareSamples(a, b);
    assert.ok(Math.abs(m.ssim!.mean - expected.ssim) < 1e-5, `${m.ssim!.mean} vs ${expected.ssim}`);
    assert.ok(Math.abs(m.ssim!.mse - expected.mse) < 1e-6);
    assert.ok(m.ssim!.mean < 0.999, "the pruned UNet's images differ");
    torch.dispose([a, b]);
  });
});

describe("diffprune eval: bad requests", () => {
  test("the command fails with one line and writes nothing", () => {
    const out = join(scratch, "bad.json");
    const r = run("eval", "--model", fixture("unet-tiny"), "--ssim", "--out", out);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /^diffprune: --ssim compares .* give --reference DIR\n$/);
    assert.ok(!existsSync(out), "no metrics written");
  });

  // The rest in-process: the same action, without a process start each.
  const base = { num: 1, steps: 2, skip: "uniform", seed: 0, batchSize: 64, data: "fashion-mnist", extractor: "classifier", latencyBatch: 2, repeats: 1 } as const;
  const cases: [string, Partial<Parameters<typeof evalAction>[0]>, RegExp][] = [
    ["the classifier on 16x16 images", { model: fixture("unet-tiny"), fid: true }, /takes 1x32x32 images but the model makes 1x16x16: use --extractor inception/],
    ["Inception without weights", { model: fixture("unet-tiny"), fid: true, extractor: "inception" }, /needs --inception-weights FILE/],
    ["a reference of another image shape", { model: fixture("unet-tiny"), reference: fixture("unet-tiny-legacy"), ssim: true }, /same image shape/],
    ["a missing model", { model: join(scratch, "none"), latency: true }, /no such folder/],
  ];
  for (const [what, args, message] of cases) {
    test(what, () => {
      const out = join(scratch, "bad2.json");
      assert.throws(() => evalAction({ ...base, out, ...args } as Parameters<typeof evalAction>[0]), message);
      assert.ok(!existsSync(out), "no metrics written");
    });
  }
});
