// AutoencoderKL by closed forms (no reference fixture exists): the posterior is quant_conv's
// output split into mean and clamped log variance; mode, sample, kl; decode shapes; names and
// defaults of diffusers 0.17; save/load round trips; errors.
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { AUTOENCODER_KL_DEFAULTS, AutoencoderKL, ConfigError, resolveAutoencoderKLConfig } from "../../src/models/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { assertClose, maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-kl-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const small = {
  block_out_channels: [16, 32],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"],
  norm_num_groups: 8,
  latent_channels: 4,
  sample_size: 16,
} as const;

function model(seed = 0): AutoencoderKL {
  torch.manualSeed(seed);
  return torch.noGrad(() => new AutoencoderKL({ ...small, down_block_types: [...small.down_block_types], up_block_types: [...small.up_block_types], block_out_channels: [...small.block_out_channels] }));
}

/** quant_conv outputs `bias` everywhere: mean = bias[:4], raw log variance = bias[4:]. */
function constantMoments(vae: AutoencoderKL, bias: number[]): void {
  torch.noGrad(() => {
    vae.quantConv.weight.zero_();
    vae.quantConv.bias!.copy_(torch.tensor(bias));
  });
}

/** Channel c of a [B, C, H, W] tensor as a flat array. */
const channel = (t: Tensor, c: number): number[] => t.select(1, c).reshape(-1).toArray();

describe("the posterior", () => {
  const vae = model();
  const x = torch.keep(torch.randn([2, 3, 16, 16]));

  test("mean and log variance are quant_conv's output split along channels", () => {
    const moments = torch.noGrad(() => vae.quantConv.forward(vae.encoder.forward(x)));
    assert.deepEqual(moments.shape, [2, 8, 8, 8]);
    const posterior = torch.noGrad(() => vae.encode(x));
    assert.ok(torch.equal(posterior.mean, moments.narrow(1, 0, 4)));
    assert.ok(torch.equal(posterior.logvar, moments.narrow(1, 4, 4).clamp(-30, 20)));
    assert.ok(torch.equal(posterior.mode(), posterior.mean), "mode() is the mean");
    assertClose(posterior.std, posterior.logvar.mul(0.5).exp(), 0, "std");
    assertClose(posterior.var, posterior.logvar.exp(), 0, "var");
  });

  test("the log variance is clamped to [-30, 20]", () => {
    const vae = model(1);
    constantMoments(vae, [0.5, -1, 2, 0, 100, -100, 0.5, -1]);
    const p = torch.noGrad(() => vae.encode(x));
    for (const [c, l] of [20, -30, 0.5, -1].entries()) {
      assert.ok(channel(p.logvar, c).every((v) => v === Math.fround(l)), `logvar channel ${c} is ${l}`);
      assertClose(channel(p.std, c), new Array<number>(128).fill(Math.exp(0.5 * l)), 1e-6 * Math.exp(0.5 * l), `std channel ${c}`);
    }
    for (const [c, m] of [0.5, -1, 2, 0].entries()) assert.ok(channel(p.mean, c).every((v) => v === m));
  });

  test("sample(noise) = mean + std * noise; sample() draws the noise from torch's generator", () => {
    const p = torch.noGrad(() => vae.encode(x));
    const noise = torch.randn([2, 4, 8, 8]);
    assert.ok(torch.equal(p.sample(noise), p.mean.add(p.std.mul(noise))));
    torch.manualSeed(7);
    const drawn = p.sample();
    torch.manualSeed(7);
    assert.ok(torch.equal(drawn, p.mean.add(p.std.mul(torch.randn([2, 4, 8, 8])))));
  });

  test("samples have the posterior's mean and variance", () => {
    const vae = model(2);
    const means = [0.5, -1, 2, 0];
    const variances = [0.25, 1, 4, 0.01];
    constantMoments(vae, [...means, ...variances.map(Math.log)]);
    torch.manualSeed(11);
    const s = torch.noGrad(() => vae.encode(torch.randn([16, 3, 16, 16])).sample());
    for (let c = 0; c < 4; c++) {
      const v = channel(s, c);
      const n = v.length; // 1024
      const mean = v.reduce((a, b) => a + b, 0) / n;
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
      // 5 standard errors
      assert.ok(Math.abs(mean - means[c]!) <= 5 * Math.sqrt(variances[c]! / n), `channel ${c}: mean ${mean}, expected ${means[c]}`);
      assert.ok(Math.abs(variance / variances[c]! - 1) <= 5 * Math.sqrt(2 / (n - 1)), `channel ${c}: variance ${variance}, expected ${variances[c]}`);
    }
  });

  test("kl to N(0, I): 0 for the standard normal, 0.5 * sum(m^2 + var - 1 - logvar) otherwise", () => {
    const vae = model(3);
    constantMoments(vae, [0, 0, 0, 0, 0, 0, 0, 0]);
    assertClose(torch.noGrad(() => vae.encode(x)).kl(), [0, 0], 1e-6, "kl");
    const m = [0.5, -1, 2, 0];
    const l = [Math.log(0.25), 0, Math.log(4), -2];
    constantMoments(vae, [...m, ...l]);
    const perPixel = m.reduce((a, mi, c) => a + 0.5 * (mi * mi + Math.exp(l[c]!) - 1 - l[c]!), 0);
    const kl = torch.noGrad(() => vae.encode(x)).kl();
    assertClose(kl, [64 * perPixel, 64 * perPixel], 1e-4 * 64 * perPixel, "kl");
    // nll of the mean: 0.5 * sum(log 2pi + logvar)
    const p = torch.noGrad(() => vae.encode(x));
    const nll = 64 * l.reduce((a, li) => a + 0.5 * (Math.log(2 * Math.PI) + li), 0);
    assertClose(p.nll(p.mean), [nll, nll], 1e-4 * Math.abs(nll), "nll");
  });

  test("encode and decode keep no tensors they do not return", () => {
    torch.noGrad(() => vae.forward(x)).dispose(); // warm-up
    const before = torch.memory().numTensors;
    torch.noGrad(() => vae.forward(x, { samplePosterior: true })).dispose();
    const z = torch.zeros([1, 4, 8, 8]);
    torch.noGrad(() => vae.decode(z)).dispose();
    z.dispose();
    torch.dispose(torch.noGrad(() => vae.encode(x)));
    assert.equal(torch.memory().numTensors, before);
  });
});

describe("decode and forward", () => {
  const vae = model(4);

  test("decode maps [B, 4, h, w] latents to [B, 3, 2h, 2w] images", () => {
    assert.deepEqual(torch.noGrad(() => vae.decode(torch.randn([3, 4, 8, 8]))).shape, [3, 3, 16, 16]);
    assert.deepEqual(torch.noGrad(() => vae.decode(torch.randn([1, 4, 5, 7]))).shape, [1, 3, 10, 14]);
  });

  test("forward decodes the posterior's mode, or a sample of it", () => {
    const x = torch.randn([2, 3, 16, 16]);
    const p = torch.noGrad(() => vae.encode(x));
    assert.ok(torch.equal(torch.noGrad(() => vae.forward(x)), torch.noGrad(() => vae.decode(p.mean))));
    const noise = torch.randn([2, 4, 8, 8]);
    assert.ok(torch.equal(torch.noGrad(() => vae.forward(x, { samplePosterior: true, noise })), torch.noGrad(() => vae.decode(p.sample(noise)))));
  });

  test("inputs of the wrong shape are clear errors", () => {
    assert.throws(() => vae.encode(torch.zeros([1, 4, 16, 16])), /encode: expected images of shape \[B, 3, H, W\], got \[1, 4, 16, 16\]/);
    assert.throws(() => vae.decode(torch.zeros([1, 3, 8, 8])), /decode: expected latents of shape \[B, 4, H, W\], got \[1, 3, 8, 8\]/);
  });
});

describe("names, defaults and checkpoints", () => {
  test("defaults are diffusers 0.17's, with diffusers' parameter names and shapes", () => {
    assert.deepEqual(
      { ...AUTOENCODER_KL_DEFAULTS },
      {
        in_channels: 3,
        out_channels: 3,
        down_block_types: ["DownEncoderBlock2D"],
        up_block_types: ["UpDecoderBlock2D"],
        block_out_channels: [64],
        layers_per_block: 1,
        act_fn: "silu",
        latent_channels: 4,
        norm_num_groups: 32,
        sample_size: 32,
        scaling_factor: 0.18215,
      },
    );
    const vae = torch.noGrad(() => new AutoencoderKL({}));
    assert.equal(vae.scalingFactor, 0.18215);
    assert.equal(vae.config._class_name, "AutoencoderKL");
    const shapes = new Map([...vae.stateDict()].map(([k, t]) => [k, t.shape]));
    assert.deepEqual(shapes.get("encoder.conv_out.weight"), [8, 64, 3, 3], "double_z: 2 * latent_channels");
    assert.deepEqual(shapes.get("quant_conv.weight"), [8, 8, 1, 1]);
    assert.deepEqual(shapes.get("post_quant_conv.weight"), [4, 4, 1, 1]);
    assert.deepEqual(shapes.get("decoder.conv_in.weight"), [64, 4, 3, 3]);
    assert.deepEqual(shapes.get("encoder.mid_block.attentions.0.to_q.weight"), [64, 64]);
    assert.deepEqual(shapes.get("decoder.up_blocks.0.resnets.1.conv2.weight"), [64, 64, 3, 3], "layers_per_block + 1 resnets per decoder block");
    assert.ok(!shapes.has("encoder.down_blocks.0.downsamplers.0.conv.weight"), "the last encoder block has no downsampler");
    assert.ok(![...shapes.keys()].some((k) => k.includes("time_emb_proj")), "no time embedding");
    assert.ok(![...shapes.keys()].some((k) => k.includes("quantize")), "no codebook");
    vae.dispose();
  });

  test("save -> load gives identical tensors, config and outputs", () => {
    const vae = model(5);
    const dir = join(scratch, "roundtrip");
    vae.savePretrained(dir);
    const back = AutoencoderKL.fromPretrained(dir);
    for (const [key, t] of vae.stateDict()) assert.ok(torch.equal(t, back.stateDict().get(key)!), key);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config._class_name, "AutoencoderKL");
    assert.equal(config.latent_channels, 4);
    assert.equal(config.scaling_factor, 0.18215);
    const x = torch.randn([1, 3, 16, 16]);
    assert.equal(maxAbsDiff(torch.noGrad(() => vae.forward(x)), torch.noGrad(() => back.forward(x))), 0);
  });

  test("a pipeline's vae/ folder loads", () => {
    const vae = model(6);
    const pipeline = join(scratch, "pipeline");
    vae.savePretrained(join(pipeline, "vae"));
    const back = AutoencoderKL.fromPretrained(pipeline);
    assert.ok(torch.equal(back.quantConv.weight, vae.quantConv.weight));
  });

  test("a VQModel folder is refused by name; bad configs are ConfigErrors naming the key", () => {
    assert.throws(() => AutoencoderKL.fromPretrained(fixture("ldm-tiny")), (e: unknown) => e instanceof ConfigError && /vqvae\/config\.json: _class_name is "VQModel" where AutoencoderKL was expected/.test(e.message));
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ down_block_types: ["AttnDownEncoderBlock2D"] }, /down_block_types\[0\] "AttnDownEncoderBlock2D" is not supported/],
      [{ block_out_channels: [64, 96], down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"], norm_num_groups: 64 }, /block_out_channels entry 96 is not divisible by norm_num_groups 64/],
      [{ latent_channels: -4 }, /latent_channels must be a positive integer, got -4/],
      [{ norm_num_groups: null }, /norm_num_groups null is not supported/],
    ];
    for (const [patch, message] of bad)
      assert.throws(() => resolveAutoencoderKLConfig(patch, "vae/config.json"), (e: unknown) => e instanceof ConfigError && /^vae\/config\.json: /.test(e.message) && message.test(e.message));
  });
});
