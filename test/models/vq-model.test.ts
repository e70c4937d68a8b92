// VQModel against diffusers 0.17's own outputs (test/fixtures/ldm-tiny), its parameter names,
// the vector quantizer in closed form, checkpoints (pipeline folders, legacy names, round trips)
// and the errors of bad configs and inputs.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { loadFile, saveFile } from "../../src/io/index.js";
import { ConfigError, ModelFolderError, VQ_MODEL_DEFAULTS, VQModel, resolveVQModelConfig } from "../../src/models/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-vq-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const vqDir = fixture("ldm-tiny", "vqvae");
const expected = loadFile(fixture("ldm-tiny", "expected.safetensors"));
const get = (key: string): Tensor => expected.get(key)!;
const TOL = 1e-3;

describe("VQModel matches diffusers 0.17 (ldm-tiny)", () => {
  const vq = VQModel.fromPretrained(fixture("ldm-tiny")); // a pipeline folder: loads vqvae/

  test("encode(encode_in) = encode_out (the latents before quantization)", () => {
    const err = maxAbsDiff(torch.noGrad(() => vq.encode(get("encode_in"))), get("encode_out"));
    assert.ok(err <= TOL, `max |diff| ${err}`);
  });

  test("decode(encode_out) = reconstruction (decode quantizes)", () => {
    const err = maxAbsDiff(torch.noGrad(() => vq.decode(get("encode_out"))), get("reconstruction"));
    assert.ok(err <= TOL, `max |diff| ${err}`);
  });

  test("decode(latents) = image, the pipeline's decoded samples", () => {
    const err = maxAbsDiff(torch.noGrad(() => vq.decode(get("latents"))), get("image"));
    assert.ok(err <= TOL, `max |diff| ${err}`);
  });

  test("forward = decode(encode(x))", () => {
    const err = maxAbsDiff(torch.noGrad(() => vq.forward(get("encode_in"))), get("reconstruction"));
    assert.ok(err <= TOL, `max |diff| ${err}`);
  });

  test("the parameters are exactly the checkpoint's, under diffusers' names", () => {
    const file = loadFile(join(vqDir, "diffusion_pytorch_model.safetensors"));
    const ours = vq.stateDict();
    assert.deepEqual([...ours.keys()].sort(), [...file.keys()].sort());
    for (const [key, t] of file) assert.deepEqual(ours.get(key)!.shape, t.shape, key);
    assert.equal(vq.scalingFactor, 0.18215);
    assert.equal(vq.latentChannels, 3);
  });
});

describe("the vector quantizer", () => {
  const vq = VQModel.fromPretrained(vqDir);
  const h = torch.keep(torch.noGrad(() => vq.encode(get("encode_in"))));

  test("every position becomes its nearest codebook vector (brute force)", () => {
    const { quantized, indices, loss } = torch.noGrad(() => vq.quantizeLatents(h));
    const codebook = vq.quantize.embedding.weight;
    const [n, d] = codebook.shape as [number, number];
    const codes = codebook.toArray();
    const z = h.permute(0, 2, 3, 1).reshape(-1, d).toArray();
    const q = quantized.permute(0, 2, 3, 1).reshape(-1, d).toArray();
    const idx = indices.toArray();
    assert.equal(idx.length, z.length / d);
    let mse = 0;
    for (let p = 0; p < idx.length; p++) {
      let best = 0;
      let bestDist = Infinity;
      for (let k = 0; k < n; k++) {
        let dist = 0;
        for (let j = 0; j < d; j++) dist += (z[p * d + j]! - codes[k * d + j]!) ** 2;
        if (dist < bestDist) [best, bestDist] = [k, dist];
      }
      assert.equal(idx[p], best, `position ${p}`);
      for (let j = 0; j < d; j++) assert.ok(Math.abs(q[p * d + j]! - codes[best * d + j]!) <= 1e-6);
      mse += bestDist;
    }
    mse /= z.length;
    // legacy: |sg(zq) - z|^2 + beta |zq - sg(z)|^2, both the same number without gradients
    assert.ok(Math.abs(loss.item() - 1.25 * mse) <= 1e-6 * Math.max(1, mse), `loss ${loss.item()}, expected ${1.25 * mse}`);
  });

  test("gradients pass straight through the quantization", () => {
    const z = h.detach().clone().requiresGrad_(true);
    const weights = torch.arange(0, z.numel, 1, { dtype: "float32" }).reshape([...z.shape]);
    vq.quantize.forward(z).quantized.mul(weights).sum().backward();
    assert.ok(torch.equal(z.grad!, weights), "d(sum(w * quantized))/dz = w");
    for (const p of vq.parameters()) p.grad = null;
  });

  test("forceNotQuantize skips the codebook", () => {
    const direct = torch.noGrad(() => vq.decode(h, { forceNotQuantize: true }));
    const byHand = torch.noGrad(() => vq.decoder.forward(vq.postQuantConv.forward(h)));
    assert.ok(torch.equal(direct, byHand));
    assert.ok(maxAbsDiff(direct, torch.noGrad(() => vq.decode(h))) > 1e-3, "quantizing changes the output");
  });
});

describe("checkpoints", () => {
  test("save -> load is bit-exact and keeps the config", () => {
    const vq = VQModel.fromPretrained(vqDir);
    const dir = join(scratch, "roundtrip");
    vq.savePretrained(dir);
    const back = VQModel.fromPretrained(dir);
    for (const [key, t] of vq.stateDict()) assert.ok(torch.equal(t, back.stateDict().get(key)!), key);
    const saved = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    const original = JSON.parse(readFileSync(join(vqDir, "config.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(saved, original);
  });

  test("legacy attention names (query, key, value, proj_attn) load as to_q, to_k, to_v, to_out.0", () => {
    const dir = join(scratch, "legacy");
    mkdirSync(dir);
    copyFileSync(join(vqDir, "config.json"), join(dir, "config.json"));
    const legacy: Record<string, string> = { to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" };
    const renamed = new Map<string, Tensor>();
    for (const [key, t] of loadFile(join(vqDir, "diffusion_pytorch_model.safetensors"))) {
      const m = /^(.*\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(key);
      renamed.set(m ? `${m[1]}${legacy[m[2]!]}.${m[3]}` : key, t);
    }
    assert.ok(renamed.has("encoder.mid_block.attentions.0.proj_attn.weight"));
    saveFile(renamed, join(dir, "diffusion_pytorch_model.safetensors"));
    const vq = VQModel.fromPretrained(dir);
    const err = maxAbsDiff(torch.noGrad(() => vq.decode(get("encode_out"))), get("reconstruction"));
    assert.ok(err <= TOL, `max |diff| ${err}`);
  });

  test("vq_embed_dim wider than latent_channels: quant_conv widens, post_quant_conv narrows", () => {
    torch.manualSeed(3);
    const vq = new VQModel({ block_out_channels: [16, 32], down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"], norm_num_groups: 8, latent_channels: 3, vq_embed_dim: 5, num_vq_embeddings: 12 });
    const sd = vq.stateDict();
    assert.deepEqual(sd.get("quant_conv.weight")!.shape, [5, 3, 1, 1]);
    assert.deepEqual(sd.get("quantize.embedding.weight")!.shape, [12, 5]);
    assert.deepEqual(sd.get("post_quant_conv.weight")!.shape, [3, 5, 1, 1]);
    const codes = sd.get("quantize.embedding.weight")!;
    assert.ok(codes.abs().max().item() <= 1 / 12, "codebook drawn from U(-1/n, 1/n) as diffusers does");
    const x = torch.randn([2, 3, 16, 16]);
    const latents = torch.noGrad(() => vq.encode(x));
    assert.deepEqual(latents.shape, [2, 5, 8, 8]);
    assert.deepEqual(torch.noGrad(() => vq.decode(latents)).shape, [2, 3, 16, 16]);
  });

  test("defaults are diffusers 0.17's", () => {
    assert.deepEqual(
      { ...VQ_MODEL_DEFAULTS },
      {
        in_channels: 3,
        out_channels: 3,
        down_block_types: ["DownEncoderBlock2D"],
        up_block_types: ["UpDecoderBlock2D"],
        block_out_channels: [64],
        layers_per_block: 1,
        act_fn: "silu",
        latent_channels: 3,
        sample_size: 32,
        num_vq_embeddings: 256,
        norm_num_groups: 32,
        vq_embed_dim: null,
        scaling_factor: 0.18215,
      },
    );
    const c = resolveVQModelConfig({});
    assert.equal(c._class_name, "VQModel");
  });

  test("bad folders say what is wrong", () => {
    assert.throws(() => VQModel.fromPretrained(join(scratch, "absent")), (e: unknown) => e instanceof ModelFolderError && /no such folder/.test(e.message));
    const empty = join(scratch, "empty");
    mkdirSync(empty);
    assert.throws(() => VQModel.fromPretrained(empty), /none of config\.json, vqvae\/config\.json, vae\/config\.json is there/);
    const pickle = join(scratch, "pickle");
    mkdirSync(pickle);
    copyFileSync(join(vqDir, "config.json"), join(pickle, "config.json"));
    writeFileSync(join(pickle, "diffusion_pytorch_model.bin"), "");
    assert.throws(() => VQModel.fromPretrained(pickle), /only diffusion_pytorch_model\.bin is there; convert it/);
    assert.throws(() => VQModel.fromPretrained(fixture("ldm-tiny", "unet")), (e: unknown) => e instanceof ConfigError && /_class_name is "UNet2DModel" where VQModel was expected/.test(e.message));
  });

  test("a checkpoint missing a tensor is refused, naming it", () => {
    const dir = join(scratch, "missing");
    mkdirSync(dir);
    copyFileSync(join(vqDir, "config.json"), join(dir, "config.json"));
    const tensors = loadFile(join(vqDir, "diffusion_pytorch_model.safetensors"));
    tensors.delete("quantize.embedding.weight");
    saveFile(tensors, join(dir, "diffusion_pytorch_model.safetensors"));
    assert.throws(() => VQModel.fromPretrained(dir), /quantize\.embedding\.weight/);
  });

  test("inputs of the wrong shape are clear errors", () => {
    const vq = VQModel.fromPretrained(vqDir);
    assert.throws(() => vq.encode(torch.zeros([1, 1, 32, 32])), /encode: expected images of shape \[B, 3, H, W\], got \[1, 1, 32, 32\]/);
    assert.throws(() => vq.decode(torch.zeros([1, 4, 8, 8])), /decode: expected latents of shape \[B, 3, H, W\], got \[1, 4, 8, 8\]/);
    assert.throws(() => vq.decode(torch.zeros([3, 8, 8])), /decode: expected latents/);
  });
});

describe("bad configs are ConfigErrors naming the file and the key", () => {
  const tiny = JSON.parse(readFileSync(join(vqDir, "config.json"), "utf8")) as Record<string, unknown>;
  const BAD: [string, Record<string, unknown>, RegExp][] = [
    ["an unknown down block", { down_block_types: ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"] }, /down_block_types\[1\] "AttnDownEncoderBlock2D" is not supported \(DownEncoderBlock2D; the attention variants are not implemented\)/],
    ["a UNet block", { up_block_types: ["UpBlock2D", "UpDecoderBlock2D"] }, /up_block_types\[0\] "UpBlock2D" is not supported/],
    ["block_out_channels not divisible by norm_num_groups", { norm_num_groups: 24 }, /block_out_channels entry 32 is not divisible by norm_num_groups 24/],
    ["fewer block types than channels", { down_block_types: ["DownEncoderBlock2D"] }, /block_out_channels has 2 entries but down_block_types has 1/],
    ["block_out_channels empty", { block_out_channels: [] }, /block_out_channels must be a non-empty list of positive integers, got \[\]/],
    ["latent_channels 0", { latent_channels: 0 }, /latent_channels must be a positive integer, got 0/],
    ["num_vq_embeddings 1.5", { num_vq_embeddings: 1.5 }, /num_vq_embeddings \(the codebook size\) must be a positive integer, got 1\.5/],
    ["vq_embed_dim a string", { vq_embed_dim: "3" }, /vq_embed_dim must be a positive integer or null/],
    ["act_fn gelu", { act_fn: "gelu" }, /act_fn "gelu" is not implemented/],
    ["scaling_factor 0", { scaling_factor: 0 }, /scaling_factor must be a positive number/],
    ["another class", { _class_name: "AutoencoderKL" }, /_class_name is "AutoencoderKL" where VQModel was expected/],
    ["layers_per_block 1e9", { layers_per_block: 1e9 }, /this config makes an autoencoder of about [\d.]+e\+\d+ parameters .* more than this machine's/],
  ];
  for (const [name, patch, message] of BAD)
    test(name, () => {
      assert.throws(() => resolveVQModelConfig({ ...tiny, ...patch }, "some/dir/config.json"), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
        assert.match(e.message, /^some\/dir\/config\.json: /);
        assert.match(e.message, message);
        return true;
      });
    });

  test("the constructor checks the config too", () => {
    assert.throws(() => new VQModel({ block_out_channels: [30] }), (e: unknown) => e instanceof ConfigError && /30 is not divisible by norm_num_groups 32/.test(e.message));
  });
});
