// The commands on a latent pipeline (test/fixtures/ldm-tiny, an LDMPipeline), each run as a real
// `diffprune` process: sample decodes the latents into the reference's images, count reports the
// UNet per step and the decoder once, prune and finetune write pipeline folders that sample again,
// and the commands that read models on pixels only refuse a latent pipeline instead of half-using it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadFile, readImage } from "../../src/io/index.js";
import { VQModel } from "../../src/models/index.js";
import { disposePipeline, loadPipeline } from "../../src/diffusion/index.js";
import { fixture, repoRoot, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-ldm-cli-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1", DIFFPRUNE_CACHE: join(scratch, "cache") };
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env });
const ldm = fixture("ldm-tiny");
const initNoise = fixture("ldm-tiny", "init_noise.safetensors");
const images = tinyImageFolder(join(scratch, "images"));

describe("diffprune on a latent pipeline", () => {
  test("sample: the reference pipeline's decoded images from the same noise (DDIM 10, the paper's sampler)", (t) => {
    const out = join(scratch, "samples");
    const r = run("sample", "--model", ldm, "--init-noise", initNoise, "--steps", "10", "--out", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { out, num: 2, steps: 10, runtime: "libtorch" });
    const samples = loadFile(join(out, "samples.safetensors")).get("samples")!;
    const expected = loadFile(fixture("ldm-tiny", "expected.safetensors")).get("image")!;
    const err = maxAbsDiff(samples, expected);
    t.diagnostic(`samples vs the reference's image: max |diff| ${err.toExponential(2)}`);
    assert.ok(err <= 1e-3, `max |diff| ${err}`);
    const png = readImage(join(out, "00000.png"));
    assert.deepEqual([png.width, png.height, png.channels], [32, 32, 3]);
  });

  test("count: the UNet per sampling step and the decoder once, in text and --json", () => {
    const r = run("count", "--model", ldm, "--json");
    assert.equal(r.status, 0, r.stderr);
    const vq = VQModel.fromPretrained(ldm);
    const decoderParams = vq.postQuantConv.numParameters() + vq.decoder.numParameters();
    vq.dispose();
    const counted = JSON.parse(r.stdout) as { params: number; macs: number; decoder: { params: number; macs: number } };
    assert.equal(counted.params, 702_499); // ldm-tiny-pruned-magnitude/reference.json's count before pruning
    assert.equal(counted.macs, 64_717_216);
    assert.equal(counted.decoder.params, decoderParams);
    assert.ok(counted.decoder.macs > 0);
    const text = run("count", "--model", ldm);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^unet +params 702,499 .* per sampling step\ndecoder +params .* once per image \(vqvae\/, VQModel/);
  });

  test("prune then finetune: pipeline folders (the vqvae copied) that sample", () => {
    const pruned = join(scratch, "pruned");
    const p = run("prune", "--model", ldm, "--method", "magnitude", "--ratio", "0.3", "--out", pruned, "--json");
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(JSON.parse(p.stdout).autoencoder, { class_name: "VQModel", folder: "vqvae" });
    assert.deepEqual(readdirSync(pruned).sort(), ["model_index.json", "pruning.json", "scheduler", "unet", "vqvae"]);
    const text = run("prune", "--model", ldm, "--method", "random", "--ratio", "0.3", "--out", join(scratch, "random"));
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /the latent pipeline's UNet \(pipeline folder written; vqvae\/, its VQModel, copied unchanged\)/);

    const ft = join(scratch, "ft");
    const f = run("finetune", "--model", pruned, "--data", `folder:${images}`, "--steps", "2", "--batch-size", "2", "--out", ft, "--json");
    assert.equal(f.status, 0, f.stderr);
    assert.match(f.stderr, /latents of folder:.* encoded by the pipeline's vqvae and cached/);
    const model = join(ft, "model");
    assert.ok(existsSync(join(model, "model_index.json")) && existsSync(join(model, "vqvae", "config.json")));
    const s = run("sample", "--model", model, "--num", "2", "--steps", "2", "--out", join(scratch, "ft-samples"));
    assert.equal(s.status, 0, s.stderr);
    assert.deepEqual(loadFile(join(scratch, "ft-samples", "samples.safetensors")).get("samples")!.shape, [2, 3, 32, 32]);
  });

  test("finetune --flip is refused on latents, naming the flag", () => {
    const r = run("finetune", "--model", ldm, "--data", `folder:${images}`, "--flip", "--steps", "1", "--out", join(scratch, "flip"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--flip mirrors training images, but a latent pipeline trains on latents/);
  });

  test("eval measures a latent pipeline's UNet (params, MACs and latency per sampling step)", () => {
    const out = join(scratch, "eval.json");
    const e = run("eval", "--model", ldm, "--latency", "--latency-batch", "2", "--repeats", "1", "--out", out);
    assert.equal(e.status, 0, e.stderr);
    const m = JSON.parse(readFileSync(out, "utf8")) as { params: { model: number }; latency: { model: { batch_size: number }[] } };
    const p = loadPipeline({ model: ldm }, { latent: true });
    assert.equal(m.params.model, p.model.numParameters(), "the UNet's params, not the autoencoder's");
    assert.deepEqual(m.latency.model.map((l) => l.batch_size), [1, 2]);
    disposePipeline(p);
  });
});
