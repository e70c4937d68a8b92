// UNet2DModel against diffusers' own outputs, its parameter count and names, and checkpoints
// (round trips, pruned-style narrowed layers, bad folders).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { ConfigError, UNet2DModel } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = mkdtempSync(join(tmpdir(), "diffprune-unet-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function forwardMatches(name: string): number {
  const model = UNet2DModel.fromPretrained(fixture(name));
  const f = loadFile(fixture(name, "forward.safetensors"));
  const out = torch.noGrad(() => model.forward(f.get("sample")!, f.get("timestep")!));
  return maxAbsDiff(out, f.get("expected")!);
}

describe("UNet2DModel matches diffusers", () => {
  test("unet-tiny (multi-head attention, flip_sin_to_cos, downsample_padding 1)", () => {
    assert.ok(forwardMatches("unet-tiny") <= 1e-4);
  });

  test("unet-tiny-legacy (legacy attention names, single head, freq_shift 1, padding 0)", () => {
    assert.ok(forwardMatches("unet-tiny-legacy") <= 1e-4);
  });

  test("the google/ddpm-cifar10-32 config has 35,746,307 parameters under diffusers' names", () => {
    const config = JSON.parse(readFileSync(fixture("ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
    const model = torch.noGrad(() => new UNet2DModel(config));
    assert.equal(model.numParameters(), 35_746_307);
    const keys = new Set(model.stateDict().keys());
    for (const key of [
      "conv_in.weight",
      "time_embedding.linear_1.weight",
      "time_embedding.linear_2.bias",
      "down_blocks.0.resnets.0.norm1.weight",
      "down_blocks.0.resnets.1.time_emb_proj.weight",
      "down_blocks.0.downsamplers.0.conv.weight",
      "down_blocks.1.resnets.0.conv_shortcut.weight",
      "down_blocks.1.attentions.1.to_q.weight",
      "down_blocks.1.attentions.1.to_out.0.bias",
      "down_blocks.1.attentions.0.group_norm.weight",
      "mid_block.resnets.1.conv2.weight",
      "mid_block.attentions.0.to_v.weight",
      "up_blocks.0.resnets.2.conv_shortcut.weight",
      "up_blocks.2.attentions.2.to_k.bias",
      "up_blocks.2.upsamplers.0.conv.weight",
      "conv_norm_out.bias",
      "conv_out.weight",
    ])
      assert.ok(keys.has(key), key);
    assert.ok(!keys.has("down_blocks.3.downsamplers.0.conv.weight"), "the last down block has no downsampler");
    assert.ok(!keys.has("up_blocks.3.upsamplers.0.conv.weight"), "the last up block has no upsampler");
    assert.ok(!keys.has("down_blocks.0.resnets.0.conv_shortcut.weight"), "no shortcut where channels match");
    model.dispose();
  });
});

describe("checkpoints", () => {
  test("save -> load is bit-exact", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const dir = join(scratch, "roundtrip");
    model.savePretrained(dir);
    const back = UNet2DModel.fromPretrained(dir);
    for (const [key, t] of model.stateDict()) assert.ok(torch.equal(t, back.stateDict().get(key)!), key);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).block_out_channels, [32, 64]);
  });

  test("a model with hand-narrowed layers saves, loads by shape and runs", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const keep = torch.arange(24); // 32 -> 24 channels inside one resnet (divisible by 8 groups)
    const r = "down_blocks.0.resnets.0";
    const sd = model.stateDict();
    const narrow = (key: string, dim: number) => model.setTensor(key, sd.get(key)!.indexSelect(dim, keep).detach().clone());
    narrow(`${r}.conv1.weight`, 0);
    narrow(`${r}.conv1.bias`, 0);
    narrow(`${r}.time_emb_proj.weight`, 0);
    narrow(`${r}.time_emb_proj.bias`, 0);
    narrow(`${r}.norm2.weight`, 0);
    narrow(`${r}.norm2.bias`, 0);
    narrow(`${r}.conv2.weight`, 1);
    const x = torch.randn([2, 1, 16, 16]);
    const out = torch.noGrad(() => model.forward(x, torch.tensor([3, 500], { dtype: "int64" })));
    const dir = join(scratch, "narrowed");
    model.savePretrained(dir);
    const live = torch.memory().numTensors;
    const back = UNet2DModel.fromPretrained(dir);
    // the loader's check forward on narrowed layers keeps nothing: only the model's own tensors
    assert.equal(torch.memory().numTensors - live, back.stateDict().size);
    assert.deepEqual(back.stateDict().get(`${r}.conv1.weight`)!.shape, [24, 32, 3, 3]);
    assert.equal(back.numParameters(), model.numParameters());
    const again = torch.noGrad(() => back.forward(x, torch.tensor([3, 500], { dtype: "int64" })));
    assert.equal(maxAbsDiff(out, again), 0);
  });

  test("inconsistent shapes in a checkpoint are a clear error", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    model.setTensor("down_blocks.0.resnets.0.conv1.weight", torch.zeros([24, 32, 3, 3])); // others still 32
    const dir = join(scratch, "broken");
    model.savePretrained(dir);
    assert.throws(() => UNet2DModel.fromPretrained(dir), /layer shapes do not fit together/);
  });

  test("bad folders and configs say what is wrong", () => {
    assert.throws(() => UNet2DModel.fromPretrained(join(scratch, "nope")), /no such folder/);
    const empty = join(scratch, "empty");
    mkdirSync(empty);
    assert.throws(() => UNet2DModel.fromPretrained(empty), /neither config.json nor unet\/config.json/);
    const pickle = join(scratch, "pickle");
    mkdirSync(pickle);
    copyFileSync(fixture("unet-tiny", "config.json"), join(pickle, "config.json"));
    writeFileSync(join(pickle, "diffusion_pytorch_model.bin"), "x");
    assert.throws(() => UNet2DModel.fromPretrained(pickle), /convert it to diffusion_pytorch_model.safetensors/);
    assert.throws(() => new UNet2DModel({ block_out_channels: [32, 64], down_block_types: ["DownBlock2D"] }), (e: unknown) => e instanceof ConfigError && /block_out_channels has 2 entries but down_block_types has 1/.test(e.message));
    assert.throws(() => new UNet2DModel({ _class_name: "UNet2DConditionModel" } as never), /only UNet2DModel is supported/);
    assert.throws(() => new UNet2DModel({ block_out_channels: [30, 60], down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"] }), /not divisible by norm_num_groups 32/);
  });

  test("a pipeline folder (unet/, scheduler/) loads", () => {
    const dir = join(scratch, "pipeline");
    mkdirSync(join(dir, "unet"), { recursive: true });
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors"]) copyFileSync(fixture("unet-tiny", f), join(dir, "unet", f));
    const bare = UNet2DModel.fromPretrained(fixture("unet-tiny")).stateDict();
    for (const [key, t] of UNet2DModel.fromPretrained(dir).stateDict()) assert.ok(torch.equal(t, bare.get(key)!), key);
  });
});
