// Class conditioning of UNet2DModel (diffusers 0.17): the class embedding is added to the time
// embedding, so a conditional model at label k computes what its unconditional twin computes with
// the time embedding shifted by k's embedding (here: time_embedding.linear_2's bias plus that row).
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Embedding } from "../../src/nn/index.js";
import { ConfigError, UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import { pruneUNet } from "../../src/pruning/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-classes-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const tinyConfig = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as Record<string, unknown>;
const TOL = 1e-5;

/** unet-tiny's weights in a model with a class embedding (its other weights as in the fixture). */
function conditional(extra: Partial<UNet2DConfig>, seed = 0): UNet2DModel {
  const base = UNet2DModel.fromPretrained(fixture("unet-tiny"));
  torch.manualSeed(seed);
  const model = torch.noGrad(() => new UNet2DModel({ ...tinyConfig, ...extra }));
  model.loadStateDict(new Map([...base.stateDict(), ...[...model.stateDict()].filter(([k]) => k.startsWith("class_embedding."))]));
  base.dispose();
  return model.eval();
}

/** unet-tiny with time_embedding.linear_2's bias shifted by `shift` [128]: emb + shift. */
function shifted(shift: Tensor): UNet2DModel {
  const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
  torch.noGrad(() => model.timeEmbedding.linear2.bias!.add_(shift));
  return model;
}

const sample = torch.keep(torch.randn([2, 1, 16, 16]));
const timesteps = torch.keep(torch.tensor([3, 517], { dtype: "int64" }));
const run = (model: UNet2DModel, s: Tensor, t: Tensor | number, labels?: Tensor | number): Tensor => torch.noGrad(() => model.forward(s, t, labels));

describe("num_class_embeds: a table of class embeddings", () => {
  const model = conditional({ num_class_embeds: 10 });
  const table = (model.classEmbedding as Embedding).weight;

  test("class_embedding.weight is [num_class_embeds, time_embed_dim], drawn from N(0, 1)", () => {
    assert.ok(model.classEmbedding instanceof Embedding);
    assert.deepEqual(model.stateDict().get("class_embedding.weight")!.shape, [10, 128]);
    const std = table.std().item();
    assert.ok(Math.abs(std - 1) < 0.1, `std ${std}`);
  });

  test("label k gives the unconditional output with the time embedding shifted by row k", () => {
    for (const k of [0, 7]) {
      const twin = shifted(table.select(0, k));
      const err = maxAbsDiff(run(model, sample, timesteps, k), run(twin, sample, timesteps));
      assert.ok(err <= TOL, `label ${k}: max |diff| ${err}`);
      twin.dispose();
    }
  });

  test("labels per sample: each sample is shifted by its own row", () => {
    const labels = torch.tensor([2, 9], { dtype: "int64" });
    const out = run(model, sample, timesteps, labels);
    for (const [i, k] of [2, 9].entries()) {
      const twin = shifted(table.select(0, k));
      const err = maxAbsDiff(out.narrow(0, i, 1), run(twin, sample.narrow(0, i, 1), timesteps.narrow(0, i, 1)));
      assert.ok(err <= TOL, `sample ${i}: max |diff| ${err}`);
      twin.dispose();
    }
    assert.ok(maxAbsDiff(out, run(model, sample, timesteps, 2)) > 1e-3, "the labels matter");
  });

  test("missing, unneeded and bad labels are clear errors", () => {
    assert.throws(() => run(model, sample, timesteps), /this model is class-conditional \(num_class_embeds 10\): give class labels/);
    assert.throws(() => run(model, sample, timesteps, 10), /index 10 is out of range for a table of 10 rows/);
    assert.throws(() => run(model, sample, timesteps, torch.tensor([1.5, 2])), /class labels must be integers \(an int64 tensor\), got float32/);
    assert.throws(() => run(model, sample, timesteps, torch.tensor([1, 2, 3], { dtype: "int64" })), /class labels has shape \[3\] but the batch has 2 samples/);
    const plain = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    assert.throws(() => run(plain, sample, timesteps, 1), /class labels were given but this model is not class-conditional/);
  });

  test("a checkpoint with class_embedding.weight saves and loads", () => {
    const dir = join(scratch, "table");
    model.savePretrained(dir);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config.num_class_embeds, 10);
    const back = UNet2DModel.fromPretrained(dir);
    assert.ok(torch.equal(run(back, sample, timesteps, torch.tensor([4, 1], { dtype: "int64" })), run(model, sample, timesteps, torch.tensor([4, 1], { dtype: "int64" }))));
  });
});

describe('class_embed_type "timestep": sinusoidal features of the label, then an MLP', () => {
  const model = conditional({ class_embed_type: "timestep" }, 1);

  test("the class embedding is linear_2(SiLU(linear_1(features(k)))), computed here by hand", () => {
    const sd = model.stateDict();
    assert.deepEqual(sd.get("class_embedding.linear_1.weight")!.shape, [128, 32]);
    assert.deepEqual(sd.get("class_embedding.linear_2.weight")!.shape, [128, 128]);
    const k = 5;
    // flip_sin_to_cos true, freq_shift 0, 32 channels: [cos(k f_i), sin(k f_i)], f_i = 10000^(-i/16)
    const freqs = Array.from({ length: 16 }, (_, i) => Math.exp((-Math.log(10000) * i) / 16));
    const features = torch.tensor([[...freqs.map((f) => Math.cos(k * f)), ...freqs.map((f) => Math.sin(k * f))]]);
    const emb = torch.noGrad(() => {
      const h = torch.linear(features, sd.get("class_embedding.linear_1.weight")!, sd.get("class_embedding.linear_1.bias")!).silu();
      return torch.linear(h, sd.get("class_embedding.linear_2.weight")!, sd.get("class_embedding.linear_2.bias")!).reshape(-1);
    });
    const twin = shifted(emb);
    const err = maxAbsDiff(run(model, sample, timesteps, k), run(twin, sample, timesteps));
    assert.ok(err <= 1e-4, `max |diff| ${err}`);
  });
});

describe('class_embed_type "identity": the labels are the class embeddings', () => {
  const model = conditional({ class_embed_type: "identity" });

  test("no parameters; the given vector shifts the time embedding", () => {
    assert.ok(![...model.stateDict().keys()].some((k) => k.startsWith("class_embedding")));
    torch.manualSeed(4);
    const v = torch.randn([1, 128]);
    const twin = shifted(v.reshape(-1));
    const s = sample.narrow(0, 0, 1);
    const err = maxAbsDiff(run(model, s, 3, v), run(twin, s, 3));
    assert.ok(err <= TOL, `max |diff| ${err}`);
    assert.throws(() => run(model, s, 3, 1), /"identity" takes the class embeddings themselves, \[1, 128\]; got a number/);
  });
});

describe("config", () => {
  test("unknown class_embed_type values are refused; an unconditional config has no class embedding", () => {
    assert.throws(() => new UNet2DModel({ ...tinyConfig, class_embed_type: "projection" } as unknown as Partial<UNet2DConfig>), (e: unknown) => e instanceof ConfigError && /class_embed_type "projection" is not supported/.test(e.message));
    const plain = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    assert.equal(plain.classEmbedding, null);
    assert.equal(plain.exampleClassLabels(1), undefined);
    const ldm = UNet2DModel.fromPretrained(fixture("ldm-tiny")); // class_embed_type and num_class_embeds null in its config
    assert.equal(ldm.classEmbedding, null);
  });
});

describe("pruning a class-conditional UNet", () => {
  test("magnitude at 0.3: the class table loses the time embedding's channels; save/load keeps the function", () => {
    const model = conditional({ num_class_embeds: 10 }, 2);
    const report = pruneUNet(model, { criterion: "magnitude", ratio: 0.3, scheduler: new DDPMScheduler({}) });
    assert.ok(report.after.params < report.before.params);
    const temb = model.timeEmbedding.linear2.outFeatures;
    assert.ok(temb < 128, `the time embedding was pruned (${temb} channels)`);
    assert.deepEqual(model.stateDict().get("class_embedding.weight")!.shape, [10, temb]);
    const labels = torch.tensor([3, 8], { dtype: "int64" });
    const out = run(model, sample, timesteps, labels);
    const dir = join(scratch, "pruned");
    model.savePretrained(dir);
    const back = UNet2DModel.fromPretrained(dir);
    assert.ok(torch.equal(run(back, sample, timesteps, labels), out));
  });
});
