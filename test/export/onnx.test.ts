// ONNX export checked in a real runtime: each model's graph runs in onnxruntime (CPU) and must give
// diffprune's forward at two batch sizes (neither of the two the exporter traced at), and the
// reference pipeline's output where a fixture holds it. The max errors go to the test diagnostics.
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after } from "node:test";
import { describe, test, type TestContext } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { DDPMScheduler, decodeLatents, disposePipeline, loadPipeline, loadScheduler } from "../../src/diffusion/index.js";
import { pruneUNet } from "../../src/pruning/index.js";
import { decodeMetadata, exportModelFile, exportUNet, OnnxSession, OnnxUNet, SCHEDULER_CONFIG_KEY, UNET_CONFIG_KEY } from "../../src/export/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const TOLERANCE = 1e-4;
const scratch = scratchDir("diffprune-onnx-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Distinct labels for a class-conditional model (vectors for "identity"), else undefined. */
function classLabels(model: UNet2DModel, batch: number): torch.Tensor | undefined {
  const c = model.config;
  if (c.class_embed_type === "identity") return torch.randn([batch, model.timeEmbedding.linear2.outFeatures]);
  if (c.num_class_embeds == null && c.class_embed_type == null) return undefined;
  return torch.tensor(Array.from({ length: batch }, (_, i) => (5 * i + 2) % (c.num_class_embeds ?? 1000)), { dtype: "int64" });
}

/** Max |onnxruntime - diffprune| of `model`'s exported graph at each batch size. */
async function checkAgainstForward(t: TestContext, what: string, model: UNet2DModel, batches: number[]): Promise<void> {
  const session = await OnnxSession.create(exportUNet(model).bytes);
  const c = model.config;
  try {
    for (const batch of batches) {
      torch.manualSeed(batch);
      const sample = torch.randn([batch, c.in_channels, c.sample_size, c.sample_size]);
      const timestep = torch.tensor(Array.from({ length: batch }, (_, i) => (999 - 283 * i + 1000) % 1000), { dtype: "int64" });
      const labels = classLabels(model, batch);
      const expected = torch.noGrad(() => model.forward(sample, timestep, labels));
      const actual = (await session.run({ sample, timestep, ...(labels ? { class_labels: labels } : {}) })).out_sample!;
      assert.deepEqual(actual.shape, expected.shape);
      const error = maxAbsDiff(actual, expected);
      t.diagnostic(`${what}, batch ${batch}: max |onnxruntime - diffprune| = ${error.toExponential(2)}`);
      assert.ok(error <= TOLERANCE, `${what}, batch ${batch}: max error ${error}`);
      torch.dispose([sample, timestep, expected, actual, ...(labels ? [labels] : [])]);
    }
  } finally {
    await session.release();
  }
}

describe("ONNX export in onnxruntime", () => {
  test("the shipped model (models/fashion-mnist)", async (t) => {
    const model = UNet2DModel.fromPretrained(`${repoRoot()}/models/fashion-mnist`);
    await checkAgainstForward(t, "fashion-mnist", model, [1, 4]);
    model.dispose();
  });

  test("its 30%-pruned copy (magnitude)", async (t) => {
    const model = UNet2DModel.fromPretrained(`${repoRoot()}/models/fashion-mnist`);
    const before = model.numParameters();
    const scheduler = new DDPMScheduler();
    pruneUNet(model, { criterion: "magnitude", ratio: 0.3, scheduler });
    scheduler.dispose();
    assert.ok(model.numParameters() < 0.7 * before, "the copy was pruned");
    await checkAgainstForward(t, "fashion-mnist pruned 30%", model, [1, 4]);
    model.dispose();
  });

  test("the ddpm-cifar10-32 architecture (random weights)", async (t) => {
    const { model, scheduler } = loadPipeline({ config: fixture("ddpm-cifar10-32.config.json") });
    await checkAgainstForward(t, "ddpm-cifar10-32", model, [1, 2]);
    model.dispose();
    scheduler.dispose();
  });

  for (const kind of [{ num_class_embeds: 10 }, { class_embed_type: "timestep" }, { class_embed_type: "identity" }]) {
    test(`a class-conditional UNet (${JSON.stringify(kind)}) takes class_labels`, async (t) => {
      const config = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as Record<string, unknown>;
      torch.manualSeed(0);
      const model = torch.noGrad(() => new UNet2DModel({ ...config, ...kind } as UNet2DConfig)).eval();
      await checkAgainstForward(t, `unet-tiny ${JSON.stringify(kind)}`, model, [1, 4]);
      // OnnxUNet, what sampling drives, passes the labels; leaving them out is refused
      const onnx = new OnnxUNet(await OnnxSession.create(exportUNet(model).bytes), model.config);
      const sample = torch.randn([2, 1, 16, 16]);
      const labels = classLabels(model, 2)!;
      const error = maxAbsDiff(await onnx.forward(sample, 500, labels), torch.noGrad(() => model.forward(sample, 500, labels)));
      assert.ok(error <= TOLERANCE, `OnnxUNet with labels: ${error}`);
      await assert.rejects(onnx.forward(sample, 500), /OnnxUNet: the model is class-conditional/);
      await onnx.release();
      model.dispose();
    });
  }

  test("a latent pipeline (ldm-tiny) exports its UNet and its decoder; the decoder reproduces diffusers' images", async (t) => {
    const out = join(scratch, "ldm-tiny.onnx");
    const report = exportModelFile({ model: fixture("ldm-tiny"), out });
    assert.equal(report.decoder, join(scratch, "ldm-tiny.decoder.onnx"));
    const pipeline = loadPipeline({ model: fixture("ldm-tiny") }, { latent: true });
    const expected = loadFile(fixture("ldm-tiny", "expected.safetensors"));
    const unet = await OnnxSession.create(readFileSync(out));
    const decoder = await OnnxSession.create(readFileSync(report.decoder!));
    try {
      const latents = expected.get("latents")!;
      const image = (await decoder.run({ latents })).image!;
      const error = maxAbsDiff(image, expected.get("image")!);
      t.diagnostic(`ldm-tiny decoder, batch ${latents.shape[0]}: max |onnxruntime - diffusers| = ${error.toExponential(2)}`);
      assert.ok(error <= 1e-3, `decoder against diffusers: ${error}`);
      assert.ok(maxAbsDiff(image, decodeLatents(pipeline.autoencoder!, latents)) <= TOLERANCE, "decoder against diffprune");
      const timestep = torch.tensor([999, 10], { dtype: "int64" });
      const eps = (await unet.run({ sample: latents, timestep })).out_sample!;
      assert.ok(maxAbsDiff(eps, torch.noGrad(() => pipeline.model.forward(latents, timestep))) <= TOLERANCE, "the latent UNet");
    } finally {
      await unet.release();
      await decoder.release();
      disposePipeline(pipeline);
      torch.dispose([...expected.values()]);
    }
  });

  for (const name of ["unet-tiny", "unet-tiny-legacy"]) {
    test(`${name} reproduces diffusers' output (and diffprune's at batch 1)`, async (t) => {
      const model = UNet2DModel.fromPretrained(fixture(name));
      const reference = loadFile(fixture(name, "forward.safetensors"));
      const session = await OnnxSession.create(exportUNet(model).bytes);
      const actual = (await session.run({ sample: reference.get("sample")!, timestep: reference.get("timestep")! })).out_sample!;
      const error = maxAbsDiff(actual, reference.get("expected")!);
      t.diagnostic(`${name}, batch 3: max |onnxruntime - diffusers| = ${error.toExponential(2)}`);
      assert.ok(error <= TOLERANCE, `max error against diffusers ${error}`);
      await session.release();
      await checkAgainstForward(t, name, model, [1]);
      model.dispose();
      torch.dispose([...reference.values(), actual]);
    });
  }

  test("the file carries the model's config and its training scheduler's", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const scheduler = loadScheduler(fixture("unet-tiny"));
    const metadata = decodeMetadata(exportUNet(model, { scheduler }).bytes);
    assert.deepEqual(JSON.parse(metadata.get(UNET_CONFIG_KEY)!), JSON.parse(JSON.stringify(model.savedConfig)));
    const stored = JSON.parse(metadata.get(SCHEDULER_CONFIG_KEY)!) as Record<string, unknown>;
    assert.equal(stored._class_name, scheduler.className);
    assert.equal(stored.num_train_timesteps, scheduler.numTrainTimesteps);
    assert.equal(stored.beta_schedule, scheduler.config.beta_schedule);
    model.dispose();
    scheduler.dispose();
  });
});
