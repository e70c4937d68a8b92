// config.json against the architecture's rules: each bad value is a ConfigError that names the
// file and the key, before any layer is made; the size of a config is known in closed form and
// one that cannot fit is refused with its parameter count and memory.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { ConfigError, countParams, estimateSize, resolveUNet2DConfig, UNet2DModel, whyTooLarge } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
const tiny = readJson(fixture("unet-tiny", "config.json"));
/** fashion-mnist's three resolutions (two downsamplers): sample_size must be a multiple of 4. */
const threeLevels = { ...tiny, block_out_channels: [32, 64, 64], down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"] };

const BAD: [string, Record<string, unknown>, RegExp][] = [
  ["freq_shift a string", { freq_shift: "abc" }, /freq_shift must be a number .* got "abc"/],
  ["freq_shift at half the time channels", { freq_shift: 16 }, /freq_shift must be a number below half of block_out_channels\[0\] \(16\)/],
  ["attention_head_dim 7 with 64 channels", { attention_head_dim: 7 }, /attention_head_dim 7 does not divide the 64 channels of an attention block/],
  ["attention_head_dim 0", { attention_head_dim: 0 }, /attention_head_dim must be a positive integer or null \(one head over all channels\), got 0/],
  ["attention_head_dim a string", { attention_head_dim: "16" }, /attention_head_dim must be a positive integer or null .*got "16"/],
  ["act_fn gelu", { act_fn: "gelu" }, /act_fn "gelu" is not implemented \(only "silu", also called "swish"\)/],
  ["act_fn not a string", { act_fn: 1 }, /act_fn 1 is not implemented/],
  ["sample_size 30 through 2 downsamplers", { ...threeLevels, sample_size: 30 }, /sample_size 30 does not halve evenly through the 2 downsamplers .* use a multiple of 4/],
  ["sample_size 15 through 1 downsampler", { sample_size: 15 }, /sample_size 15 does not halve evenly .* multiple of 2/],
  ["sample_size 0", { sample_size: 0 }, /sample_size must be a positive integer, got 0/],
  ["sample_size 16.5", { sample_size: 16.5 }, /sample_size must be a positive integer, got 16.5/],
  ["in_channels negative", { in_channels: -1 }, /in_channels must be a positive integer, got -1/],
  ["out_channels a string", { out_channels: "1" }, /out_channels must be a positive integer, got "1"/],
  ["layers_per_block 0", { layers_per_block: 0 }, /layers_per_block must be a positive integer, got 0/],
  ["layers_per_block null", { layers_per_block: null }, /layers_per_block must be a positive integer, got null/],
  ["norm_num_groups null", { norm_num_groups: null }, /norm_num_groups null is not supported/],
  ["norm_num_groups not dividing the channels", { norm_num_groups: 12 }, /block_out_channels entry 32 is not divisible by norm_num_groups 12/],
  ["block_out_channels empty", { block_out_channels: [], down_block_types: [], up_block_types: [] }, /block_out_channels must be a non-empty list of positive integers, got \[\]/],
  ["block_out_channels with a zero", { block_out_channels: [32, 0] }, /block_out_channels must be a non-empty list of positive integers, got \[32,0\]/],
  ["block_out_channels not a list", { block_out_channels: 64 }, /block_out_channels must be a non-empty list/],
  ["down_block_types shorter", { down_block_types: ["DownBlock2D"] }, /block_out_channels has 2 entries but down_block_types has 1/],
  ["up_block_types longer", { up_block_types: ["UpBlock2D", "UpBlock2D", "UpBlock2D"] }, /block_out_channels has 2 entries but up_block_types has 3/],
  ["down_block_types not a list", { down_block_types: "DownBlock2D" }, /down_block_types must be a list of block names/],
  ["an unknown down block", { down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"] }, /down_block_types\[1\] "CrossAttnDownBlock2D" is not supported \(DownBlock2D, AttnDownBlock2D\)/],
  ["a down block in the up list", { up_block_types: ["AttnUpBlock2D", "DownBlock2D"] }, /up_block_types\[1\] "DownBlock2D" is not supported \(UpBlock2D, AttnUpBlock2D\)/],
  ["norm_eps 0", { norm_eps: 0 }, /norm_eps must be a positive number/],
  ["norm_eps a string", { norm_eps: "1e-5" }, /norm_eps must be a positive number .*got "1e-5"/],
  ["downsample_padding 2", { downsample_padding: 2 }, /downsample_padding must be 0 or 1/],
  ["mid_block_scale_factor 0", { mid_block_scale_factor: 0 }, /mid_block_scale_factor must be a positive number/],
  ["flip_sin_to_cos a string", { flip_sin_to_cos: "true" }, /flip_sin_to_cos must be true or false, got "true"/],
  ["center_input_sample a number", { center_input_sample: 1 }, /center_input_sample must be true or false, got 1/],
  ["add_attention a string", { add_attention: "yes" }, /add_attention must be true or false/],
  ["dropout 1", { dropout: 1 }, /dropout must be a number in \[0, 1\), got 1/],
  ["time_embedding_type fourier", { time_embedding_type: "fourier" }, /time_embedding_type "fourier" is not supported/],
  ["resnet_time_scale_shift scale_shift", { resnet_time_scale_shift: "scale_shift" }, /resnet_time_scale_shift "scale_shift" is not supported/],
  ["class_embed_type projection", { class_embed_type: "projection" }, /class_embed_type "projection" is not supported by UNet2DModel \(null with num_class_embeds for a table of class embeddings, "timestep" or "identity"\)/],
  ["num_class_embeds 0", { num_class_embeds: 0 }, /num_class_embeds must be a positive integer \(the number of classes\) or null, got 0/],
  ["another class", { _class_name: "UNet2DConditionModel" }, /_class_name is "UNet2DConditionModel", but only UNet2DModel is supported/],
  ["_pruned_attention_heads a list", { _pruned_attention_heads: [4] }, /_pruned_attention_heads must be an object/],
  ["layers_per_block 1e7", { layers_per_block: 1e7 }, /this config makes a UNet of 3,003,840,400,961 parameters \(12\.0 TB of float32 weights, .* with one forward pass at batch 1\), more than this machine's .* of memory; layers_per_block \(10000000\)/],
  ["block_out_channels in the millions", { block_out_channels: [1_048_576, 2_097_152] }, /this config makes a UNet of [\d,]+ parameters \([\d.]+ [TP]B of float32 weights/],
  ["sample_size of a million pixels a side", { sample_size: 1 << 20 }, /this config makes a UNet of 701,345 parameters \(2\.8 MB of float32 weights, [\d.]+e\+\d+ bytes with one forward pass at batch 1\)/],
];

describe("bad configs are ConfigErrors naming the file and the key", () => {
  for (const [name, patch, message] of BAD)
    test(name, () => {
      assert.throws(() => resolveUNet2DConfig({ ...tiny, ...patch }, "some/dir/config.json"), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
        assert.match(e.message, /^some\/dir\/config\.json: /);
        assert.match(e.message, message);
        assert.ok(!e.message.includes("\n"), "one line");
        return true;
      });
    });

  test("the constructor checks the same (a config given in code)", () => {
    assert.throws(() => new UNet2DModel({ ...tiny, act_fn: "mish" }), /config\.json: act_fn "mish" is not implemented/);
  });
});

describe("good configs still load", () => {
  for (const path of [
    fixture("unet-tiny", "config.json"),
    fixture("unet-tiny-legacy", "config.json"),
    fixture("ldm-tiny", "unet", "config.json"),
    fixture("ddpm-cifar10-32.config.json"),
    fixture("prune-parity", "base", "config.json"),
  ])
    test(path.split("/").slice(-2).join("/"), () => assert.doesNotThrow(() => resolveUNet2DConfig(readJson(path), path)));

  test('act_fn "swish" (silu by another name), attention_head_dim null, sample_size 28 through 2 downsamplers', () => {
    assert.doesNotThrow(() => resolveUNet2DConfig({ ...threeLevels, act_fn: "swish", attention_head_dim: null, sample_size: 28 }));
  });
});

describe("the size of a config, before allocating", () => {
  const variants: Record<string, unknown>[] = [
    tiny,
    { ...tiny, layers_per_block: 3 },
    { ...tiny, add_attention: false, attention_head_dim: 8 },
    { ...threeLevels, attention_head_dim: null, in_channels: 3, out_channels: 2 },
    { ...tiny, block_out_channels: [16, 32, 48], norm_num_groups: 8, attention_head_dim: null, down_block_types: ["AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"] },
  ];
  for (const v of variants)
    test(`countParams equals the built model's count: ${JSON.stringify(v.block_out_channels)} x ${String(v.layers_per_block)}`, () => {
      const config = resolveUNet2DConfig(v);
      const model = torch.noGrad(() => new UNet2DModel(config));
      assert.equal(countParams(config), model.numParameters());
      model.dispose();
    });

  test("google/ddpm-cifar10-32: 35,746,307 parameters, 143 MB of weights", () => {
    const size = estimateSize(resolveUNet2DConfig(readJson(fixture("ddpm-cifar10-32.config.json"))));
    assert.equal(size.params, 35_746_307);
    assert.equal(size.weightBytes, 4 * 35_746_307);
  });

  test("whyTooLarge compares weights plus one forward with the limit", () => {
    const config = resolveUNet2DConfig(tiny);
    const { weightBytes, forwardBytes } = estimateSize(config);
    assert.equal(whyTooLarge(config, weightBytes + forwardBytes), null);
    assert.match(whyTooLarge(config, weightBytes) ?? "", /701,345 parameters \(2\.8 MB of float32 weights, 3\.\d MB with one forward pass at batch 1\), more than this machine's 2\.8 MB/);
  });
});
