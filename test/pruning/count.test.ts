// Params and MACs by Torch-Pruning's count_ops_and_params rules: a hand-made model against the
// rules worked out by hand, and the google/ddpm-cifar10-32 architecture (random weights) before
// and after magnitude pruning at 0.3 against the figures the paper's setup gives.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Conv2d, GroupNorm, Linear, Module } from "../../src/nn/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import { countOpsAndParams, pruneUNet } from "../../src/pruning/index.js";
import { fixture } from "../helpers/fixtures.js";

/** [1,3,8,8] -> conv 3x3 s2 (bias) -> conv 1x1 (no bias) -> GroupNorm -> depthwise 3x3 -> tokens -> linear -> linear (no bias). */
class Counted extends Module {
  readonly conv = this.registerModule("conv", new Conv2d(3, 4, 3, { stride: 2, padding: 1 }));
  readonly pointwise = this.registerModule("pointwise", new Conv2d(4, 6, 1, { bias: false }));
  readonly norm = this.registerModule("norm", new GroupNorm(2, 6));
  readonly depthwise = this.registerModule("depthwise", new Conv2d(6, 6, 3, { padding: 1, groups: 6 }));
  readonly proj = this.registerModule("proj", new Linear(6, 5));
  readonly out = this.registerModule("out", new Linear(5, 2, { bias: false }));

  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      let h = this.pointwise.forward(this.conv.forward(x).silu()); // [1, 6, 4, 4]
      h = this.depthwise.forward(this.norm.forward(h).silu());
      const tokens = h.flatten(2).transpose(1, 2); // [1, 16, 6]
      return this.out.forward(this.proj.forward(tokens).silu());
    });
  }
}

describe("countOpsAndParams", () => {
  test("a hand-made model: conv with and without bias, depthwise conv, GroupNorm, linear on 3-D input", () => {
    torch.manualSeed(0);
    const model = new Counted();
    const x = torch.randn([1, 3, 8, 8]);
    const cost = countOpsAndParams(model, () => model.forward(x));
    const hw = 4 * 4; // every conv output is 4x4
    const expected: [string, number, number][] = [
      // name, params, MACs
      ["conv", 4 * 3 * 9 + 4, 3 * 3 * 3 * 4 * hw + 4 * hw],
      ["pointwise", 6 * 4, 1 * 1 * 4 * 6 * hw],
      ["norm", 6 + 6, 2 * 6 * hw],
      ["depthwise", 6 * 1 * 9 + 6, ((3 * 3 * 6) / 6) * 6 * hw + 6 * hw],
      ["proj", 5 * 6 + 5, 16 * 6 * 5 + 5],
      ["out", 2 * 5, 16 * 5 * 2],
    ];
    assert.deepEqual(
      cost.layers.map((l) => [l.name, l.params, l.macs]),
      expected,
    );
    assert.equal(cost.params, 112 + 24 + 12 + 60 + 35 + 10);
    assert.equal(cost.params, model.numParameters());
    assert.equal(cost.macs, 1792 + 384 + 192 + 960 + 485 + 160, "SiLU, flatten and transpose count 0");
  });

  test("a layer called twice counts twice; a linear's bias counts once per call", () => {
    const lin = new Linear(3, 4);
    const twice = countOpsAndParams(lin, () => lin.forward(lin.forward(torch.zeros([1, 3])).narrow(1, 0, 3)));
    assert.equal(twice.macs, 2 * (3 * 4 + 4));
    assert.equal(twice.params, 16);
    const batch = countOpsAndParams(lin, () => lin.forward(torch.zeros([2, 3])));
    assert.equal(batch.macs, 2 * 3 * 4 + 4, "linear: numel(input) * out + out");
  });

  test("counting frees what the traced forward made, its output included", () => {
    const lin = new Linear(3, 4);
    const before = torch.memory().numTensors;
    countOpsAndParams(lin, () => lin.forward(torch.zeros([2, 3])));
    assert.equal(torch.memory().numTensors, before);
  });
});

describe("the google/ddpm-cifar10-32 architecture", () => {
  test("35,746,307 params and ~6.064 GMACs; after magnitude 0.3: 19,851,157 params and ~3.392 GMACs", () => {
    const config = JSON.parse(readFileSync(fixture("ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
    torch.manualSeed(0);
    const model = torch.noGrad(() => new UNet2DModel(config));
    const within = (value: number, target: number, what: string) =>
      assert.ok(Math.abs(value - target) <= 0.005 * target, `${what}: ${value} is not within 0.5% of ${target}`);

    // pruneUNet counts with countOpsAndParams(model, unetForward(model)) before and after
    const report = pruneUNet(model, { criterion: "magnitude", ratio: 0.3, scheduler: new DDPMScheduler({}) });
    assert.equal(report.before.params, 35_746_307);
    within(report.before.macs, 6.064e9, "MACs before");
    assert.equal(report.after.params, 19_851_157);
    assert.equal(model.numParameters(), 19_851_157);
    within(report.after.macs, 3.392e9, "MACs after");

    const m = new Map(model.namedModules());
    const norm = m.get("down_blocks.0.resnets.0.norm1") as GroupNorm;
    assert.equal(norm.numGroups, 32);
    assert.equal(norm.numChannels, 96, "128 channels lose 1 per group of 4");
    const conv2 = m.get("up_blocks.0.resnets.2.conv2") as Conv2d;
    assert.equal(conv2.outChannels, 179, "a group no GroupNorm splits: floor(0.7 * 256) = 179 kept");
    model.dispose();
  });
});
