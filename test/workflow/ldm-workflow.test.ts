// The workflow on a latent pipeline (test/fixtures/ldm-tiny, an LDMPipeline): pruning its UNet as
// ldm_prune.py does (the reference's pruned UNet, tensor for tensor) into a pipeline folder whose
// autoencoder is copied byte for byte, the gradient criteria on calibration images encoded to
// latents, and fine-tuning on latents encoded once and cached by the encoder's weights.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile, readImage, saveFile, OptionError } from "../../src/io/index.js";
import { VQModel } from "../../src/models/index.js";
import { decodeLatents, disposePipeline, encodeLatents, generateImages, loadPipeline, samplingScheduler } from "../../src/diffusion/index.js";
import { openDataset } from "../../src/data/index.js";
import { accumulateGradients, drawCalibration, saveCalibration } from "../../src/pruning/index.js";
import { encoderHash, finetune, latentCachePath, pruneModelFolder, pruneOutputReuse, readPruningRecord } from "../../src/workflow/index.js";
import { fixture, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-ldm-workflow-");
const cache = join(scratch, "cache");
const savedCache = process.env.DIFFPRUNE_CACHE;
before(() => {
  process.env.DIFFPRUNE_CACHE = cache;
});
after(() => {
  if (savedCache === undefined) delete process.env.DIFFPRUNE_CACHE;
  else process.env.DIFFPRUNE_CACHE = savedCache;
  rmSync(scratch, { recursive: true, force: true });
});
const ldm = fixture("ldm-tiny");
const images = tinyImageFolder(join(scratch, "images"));
const data = `folder:${images}`;
const sameBytes = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));

describe("pruneModelFolder on a latent pipeline", () => {
  const out = join(scratch, "magnitude");

  test("magnitude at 0.3: the reference's pruned UNet (ldm_prune.py), written as a pipeline with vqvae/ copied byte for byte", () => {
    const record = pruneModelFolder({ model: ldm, method: "magnitude", ratio: 0.3, out });
    const ref = JSON.parse(readFileSync(fixture("ldm-tiny-pruned-magnitude", "reference.json"), "utf8")) as { params: number[]; macs: number[] };
    assert.deepEqual([record.params.before, record.params.after], ref.params);
    assert.deepEqual([record.macs.before, record.macs.after], ref.macs);
    assert.deepEqual(record.autoencoder, { class_name: "VQModel", folder: "vqvae" });
    assert.deepEqual(readPruningRecord(out), record);
    assert.deepEqual(readdirSync(out).sort(), ["model_index.json", "pruning.json", "scheduler", "unet", "vqvae"]);
    for (const f of readdirSync(join(ldm, "vqvae"))) assert.ok(sameBytes(join(out, "vqvae", f), join(ldm, "vqvae", f)), `vqvae/${f}`);
    const expected = loadFile(fixture("ldm-tiny-pruned-magnitude", "diffusion_pytorch_model.safetensors"));
    const ours = loadFile(join(out, "unet", "diffusion_pytorch_model.safetensors"));
    assert.equal(ours.size, expected.size);
    let worst = 0;
    for (const [name, t] of expected) {
      assert.deepEqual(ours.get(name)!.shape, t.shape, name);
      worst = Math.max(worst, maxAbsDiff(ours.get(name)!, t));
    }
    assert.ok(worst <= 1e-4, `max |diff| over the pruned UNet's tensors ${worst}`);
    torch.dispose([...expected.values(), ...ours.values()]);
  });

  test("the written pipeline loads again and samples images", () => {
    const p = loadPipeline({ model: out }, { latent: true });
    assert.ok(p.autoencoder instanceof VQModel);
    assert.equal(p.model.numParameters(), readPruningRecord(out)!.params.after);
    torch.manualSeed(0);
    const noise = torch.randn([2, 3, 16, 16]);
    const x = generateImages(p, samplingScheduler(p.scheduler, "ddim"), noise, { numInferenceSteps: 3 });
    assert.deepEqual(x.shape, [2, 3, 32, 32]);
    torch.dispose([noise, x]);
    disposePipeline(p);
  });

  test("an LDMPipeline folder is no prune's output to replace; an earlier latent prune's is", () => {
    assert.match(pruneOutputReuse(["model_index.json", "scheduler", "unet", "vqvae"])!, /without pruning\.json/);
    assert.equal(pruneOutputReuse(readdirSync(out)), null);
  });

  test("diff-pruning: the calibration images are encoded to the latents the UNet denoises, from --data or a file alike", () => {
    const p = loadPipeline({ model: ldm }, { latent: true });
    // the gradients pruning uses are those of the UNet's loss on encode(images), with latent-shaped noise
    const calib = drawCalibration(data, p.model.config, 2, 0, { channels: 3, size: 32 });
    assert.deepEqual(calib.images.shape, [2, 3, 32, 32]);
    assert.deepEqual(calib.noise.shape, [2, 3, 16, 16]);
    const file = join(scratch, "calibration.safetensors");
    saveCalibration(file, calib);
    const latents = encodeLatents(p.autoencoder!, calib.images).mean;
    const report = accumulateGradients(p.model, { images: latents, noise: calib.noise, scheduler: p.scheduler, thr: 0.9999 });
    torch.dispose([calib.images, calib.noise, latents]);
    disposePipeline(p);

    const fromData = pruneModelFolder({ model: ldm, method: "diff-pruning", ratio: 0.3, thr: 0.9999, data, calibBatch: 2, out: join(scratch, "dp-data") });
    const fromFile = pruneModelFolder({ model: ldm, method: "diff-pruning", ratio: 0.3, thr: 0.9999, calibration: file, out: join(scratch, "dp-file") });
    assert.ok(report.losses.length < 1000, "thr close to 1 stops the loop early (the random UNet's loss hardly falls)");
    assert.deepEqual(fromData.gradients!.losses, report.losses);
    assert.deepEqual(fromFile.gradients!.losses, report.losses);
    assert.deepEqual(fromData.history, fromFile.history);
    assert.deepEqual(fromData.calibration, { source: data, batch: 2 });
    assert.ok(fromData.params.after < fromData.params.before);
    for (const dir of ["dp-data", "dp-file"]) assert.ok(existsSync(join(scratch, dir, "vqvae", "diffusion_pytorch_model.safetensors")));
  });

  test("a calibration file with image-shaped noise is refused, saying what a latent pipeline's file holds", () => {
    const file = join(scratch, "bad-calibration.safetensors");
    torch.tidy(() => saveFile({ images: torch.zeros([2, 3, 32, 32]).add(0.5), noise: torch.randn([2, 3, 32, 32]) }, file));
    assert.throws(
      () => pruneModelFolder({ model: ldm, method: "taylor", ratio: 0.3, calibration: file, out: join(scratch, "bad") }),
      /noise is \[2, 3, 32, 32\] for 2 images; it must be \[B, 3, 16, 16\]; a calibration file holds "images" \[B, 3, 32, 32\] \(in \[-1, 1\]\) and "noise" \[B, 3, 16, 16\]/,
    );
    assert.ok(!existsSync(join(scratch, "bad")));
  });
});

describe("finetune on a latent pipeline", () => {
  test("trains the UNet on latents encoded once and cached; model/ is a pipeline folder that samples", () => {
    const events: string[] = [];
    const out = join(scratch, "ft");
    const result = finetune({
      model: ldm,
      data,
      out,
      train: { steps: 2, batchSize: 2, sampleEvery: 2, numSamples: 2, sampleSteps: 2, checkpointEvery: 2 },
      onEvent: (m) => events.push(m),
    });
    assert.equal(result.steps, 2);
    assert.deepEqual(readdirSync(result.modelDir).sort(), ["model_index.json", "scheduler", "unet", "vqvae"]);
    for (const f of readdirSync(join(ldm, "vqvae"))) assert.ok(sameBytes(join(result.modelDir, "vqvae", f), join(ldm, "vqvae", f)), `vqvae/${f}`);
    assert.ok(events.some((e) => /encoded by the pipeline's vqvae and cached/.test(e)), events.join("\n"));
    // the preview grid shows decoded images (32x32 RGB), not latents
    const grid = readImage(join(out, "samples", "step-0000002.png"));
    assert.equal(grid.channels, 3);
    const runConfig = JSON.parse(readFileSync(join(out, "train_config.json"), "utf8")) as { autoencoder: unknown; latent_cache: string };
    assert.deepEqual(runConfig.autoencoder, { class_name: "VQModel", folder: "vqvae" });

    // the cache holds encode(x) of every image, keyed by the encoder's weights
    const p = loadPipeline({ model: result.modelDir }, { latent: true });
    const dataset = openDataset(data, { sampleSize: 32, channels: 3 });
    const file = latentCachePath(data, dataset, encoderHash(p.autoencoder!));
    assert.equal(runConfig.latent_cache, file);
    const cached = loadFile(file).get("mean")!;
    const x = dataset.getBatch([...Array(dataset.length).keys()]);
    const direct = encodeLatents(p.autoencoder!, x).mean;
    assert.ok(maxAbsDiff(cached, direct) <= 1e-6);
    const sampled = generateImages(p, samplingScheduler(p.scheduler, "ddim"), direct.narrow(0, 0, 2), { numInferenceSteps: 2 });
    assert.deepEqual(sampled.shape, [2, 3, 32, 32]);
    const decoded = decodeLatents(p.autoencoder!, direct);
    assert.deepEqual(decoded.shape, [8, 3, 32, 32]);
    torch.dispose([cached, x, direct, sampled, decoded]);
    disposePipeline(p);

    // a second run reads the cache
    const again: string[] = [];
    finetune({ model: ldm, data, out: join(scratch, "ft2"), train: { steps: 1, batchSize: 2 }, onEvent: (m) => again.push(m) });
    assert.ok(again.some((e) => /read from/.test(e)), again.join("\n"));
  });

  test("another encoder gets its own cache entry", () => {
    const p = loadPipeline({ model: ldm }, { latent: true });
    const dataset = openDataset(data, { sampleSize: 32, channels: 3 });
    const before = latentCachePath(data, dataset, encoderHash(p.autoencoder!));
    torch.noGrad(() => p.autoencoder!.encoder.convIn.weight.add_(0.01));
    assert.notEqual(latentCachePath(data, dataset, encoderHash(p.autoencoder!)), before);
    disposePipeline(p);
  });

  test("random flips are refused on latents, before any folder is made", () => {
    const out = join(scratch, "flip");
    assert.throws(
      () => finetune({ model: ldm, data, out, train: { steps: 1, batchSize: 2, flip: true } }),
      (e: unknown) => e instanceof OptionError && /flip mirrors training images, but a latent pipeline trains on latents/.test(e.message),
    );
    assert.ok(!existsSync(out));
  });
});

describe("pixel models keep their layout", () => {
  test("a pruned pixel pipeline folder is still a flat model folder", () => {
    const dir = join(scratch, "pixel-pipeline");
    mkdirSync(join(dir, "unet"), { recursive: true });
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors"]) writeFileSync(join(dir, "unet", f), readFileSync(fixture("unet-tiny", f)));
    writeFileSync(join(dir, "model_index.json"), JSON.stringify({ _class_name: "DDPMPipeline", unet: ["diffusers", "UNet2DModel"] }));
    const out = join(scratch, "pixel-pruned");
    const record = pruneModelFolder({ model: dir, method: "magnitude", ratio: 0.3, out });
    assert.equal(record.autoencoder, null);
    assert.deepEqual(readdirSync(out).sort(), ["config.json", "diffusion_pytorch_model.safetensors", "pruning.json", "scheduler_config.json"]);
  });
});
