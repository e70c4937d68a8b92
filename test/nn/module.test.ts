// Module bookkeeping (names, state dicts, errors, train/eval), layer defaults, AdamW and EMA.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { AdamW, Attention, Conv2d, Dropout, EMA, GroupNorm, Linear, Module, ModuleList, StateDictError } from "../../src/nn/index.js";
import { assertClose } from "../helpers/assert.js";

class Block extends Module {
  readonly conv = this.registerModule("conv", new Conv2d(2, 4, 3, { padding: 1 }));
  readonly norm = this.registerModule("norm", new GroupNorm(2, 4));
  readonly heads = this.registerModule("heads", new ModuleList([new Linear(4, 3), new Linear(3, 1, { bias: false })]));
  readonly drop = this.registerModule("drop", new Dropout(0.5));
}

describe("Module", () => {
  test("dotted names, parameter counts and shapes as torch.nn", () => {
    const b = new Block();
    assert.deepEqual(
      [...b.stateDict()].map(([k, t]) => `${k}:${t.shape.join("x")}`),
      ["conv.weight:4x2x3x3", "conv.bias:4", "norm.weight:4", "norm.bias:4", "heads.0.weight:3x4", "heads.0.bias:3", "heads.1.weight:1x3"],
    );
    assert.equal(b.numParameters(), 72 + 4 + 4 + 4 + 12 + 3 + 3);
    assert.ok(b.parameters().every((p) => p.requiresGrad));
    // torch's default init bounds: U(+-1/sqrt(fan_in)); GroupNorm starts at weight 1, bias 0
    assert.ok(b.conv.weight.abs().max().item() <= 1 / Math.sqrt(18));
    assert.deepEqual(b.norm.param("weight").toArray(), [1, 1, 1, 1]);
  });

  test("loadStateDict copies values and names what is missing, unexpected or mis-shaped", () => {
    const a = new Block();
    const b = new Block();
    b.loadStateDict(a.stateDict());
    for (const [k, t] of a.stateDict()) assert.ok(torch.equal(t, b.stateDict().get(k)!), k);
    const partial = new Map(a.stateDict());
    partial.delete("norm.bias");
    partial.set("extra.weight", torch.zeros([1]));
    assert.throws(() => b.loadStateDict(partial), (e: unknown) => e instanceof StateDictError && /missing keys: norm.bias; unexpected keys: extra.weight/.test(e.message));
    const wrong = new Map(a.stateDict());
    wrong.set("heads.0.weight", torch.zeros([2, 4]));
    assert.throws(() => b.loadStateDict(wrong), /shape mismatch: heads.0.weight: checkpoint \[2, 4\], model \[3, 4\]/);
    partial.delete("extra.weight");
    b.loadStateDict(partial, { strict: false }); // the rest loads
    // assign: a narrower tensor replaces the module's, and the layer follows it
    b.loadStateDict(wrong, { assign: true });
    assert.equal(b.heads.at(0).outFeatures, 2);
  });

  test("train/eval reach every descendant; dropout is identity in eval", () => {
    const b = new Block().eval();
    assert.ok([...b.namedModules()].every(([, m]) => !m.training));
    const x = torch.ones([100]);
    assert.ok(torch.equal(b.drop.forward(x), x));
    b.train();
    assert.ok(b.drop.forward(x).eq(0).sum().item() > 0, "training dropout zeroes some of 100 elements");
  });

  test("setTensor swaps a parameter and disposes the old one", () => {
    const b = new Block();
    const old = b.conv.weight;
    b.setTensor("conv.weight", torch.zeros([3, 2, 3, 3]));
    assert.ok(old.isDisposed);
    assert.equal(b.conv.outChannels, 3);
    assert.throws(() => b.setTensor("conv.nothing", torch.zeros([1])), /neither a parameter nor a buffer/);
    assert.throws(() => b.setTensor("nope.weight", torch.zeros([1])), /no module holds "nope.weight"/);
  });

  test("attention keeps its softmax scale when its inner width is narrowed", () => {
    const a = new Attention(8, { heads: 2, dimHead: 4, normNumGroups: 2, eps: 1e-5 });
    assert.equal(a.scale, 0.5);
    const x = torch.randn([1, 8, 2, 2]);
    assert.deepEqual(a.forward(x).shape, [1, 8, 2, 2]);
  });
});

describe("optimisers", () => {
  test("AdamW's stepCount, lr and saved state restore exactly", () => {
    const w = torch.tensor([1, -1], { dtype: "float64" }).requiresGrad_();
    const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
    w.grad = torch.tensor([1, 1], { dtype: "float64" });
    opt.step();
    assert.equal(opt.stepCount, 1);
    assertClose(w, [0.9, -1.1], 1e-8); // the first step moves by lr * g / (|g| + eps)
    const state = opt.stateDict();
    const other = new AdamW([torch.tensor([0, 0], { dtype: "float64" }).requiresGrad_()]);
    other.loadStateDict(state, opt.stepCount);
    assert.ok(torch.equal(other.expAvg[0]!, opt.expAvg[0]!) && other.stepCount === 1);
    assert.throws(() => other.loadStateDict(new Map(), 1), /no exp_avg.0/);
  });

  test("EMA decay warms up as 1 - (1 + step)^-3/4, capped, and averages", () => {
    const p = torch.tensor([0], { dtype: "float64" });
    const ema = new EMA([p], { maxDecay: 0.5 });
    assert.equal(ema.decay(), 0);
    ema.step([torch.tensor([2], { dtype: "float64" })]); // step 1: decay 0 -> copies
    assertClose(ema.shadow[0]!, [2]);
    ema.optimizationStep = 1;
    assert.ok(Math.abs(ema.decay() - 0) < 1e-12);
    ema.optimizationStep = 3; // decay(step 2) = 1 - 3^-0.75 = 0.56 -> capped at 0.5
    assert.equal(ema.decay(), 0.5);
    ema.optimizationStep = 2;
    assertClose([ema.decay()], [1 - 2 ** -0.75], 1e-12);
  });
});
