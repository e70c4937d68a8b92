// The op table against the addon and the callers: every native function has a rule or is listed as
// no op, every rule names exactly the arguments tensor.ts and functional.ts pass, traced ops read
// by name, and an op without a rule freezes the channels it touches.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { NOT_OPS, OP_RULES, Tensor, type ObservedOp, type ObservedTensor } from "../../src/torch/index.js";
import { native, type Handle } from "../../src/torch/native.js";
import { Linear, Module } from "../../src/nn/index.js";
import { DependencyGraph } from "../../src/pruning/index.js";

/** The ops `fn` runs, as observeOps reports them. */
function trace(fn: () => unknown): ObservedOp[] {
  const ops: ObservedOp[] = [];
  torch.noGrad(() => torch.tidy(() => torch.observeOps((op) => ops.push(op), fn)));
  return ops;
}

/** Runs every native op once through the public API. */
function everyOp(): void {
  const x = torch.randn([1, 4, 6, 6]);
  const a = torch.randn([3, 3]);
  const long = (values: number[], shape = [values.length]) => torch.tensor(values, { dtype: "int64", shape });
  // views and indexing
  a.reshape(9).view(3, 3).permute(1, 0).transpose(0, 1).narrow(0, 0, 2).slice(1, 0, 2).select(0, 1);
  a.indexSelect(0, long([0, 2])).gather(1, long([0, 1], [2, 1]));
  torch.cat(a.split(1, 0), 0);
  torch.stack(a.chunk(3, 1), 0);
  a.unsqueeze(0).squeeze(0).flatten().expand(2, 9).repeat(1, 2).flip(1).contiguous().clone().to("float64");
  // element-wise
  for (const f of ["neg", "abs", "sign", "sqrt", "rsqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "silu", "relu", "floor", "ceil", "round", "reciprocal", "isnan", "isfinite"] as const) a[f]();
  a.gt(0).logicalNot().logicalAnd(a.lt(1)).logicalOr(a.eq(0));
  a.add(1).sub(a).mul(2).div(a).pow(2).maximum(a).minimum(a).remainder(2).ne(a).le(a).ge(a);
  a.matmul(a).unsqueeze(0).bmm(a.unsqueeze(0));
  torch.where(a.gt(0), a, 0);
  torch.baddbmm(a.unsqueeze(0), a.unsqueeze(0), a.unsqueeze(0));
  torch.trace(a);
  a.clamp(-1, 1).cumsum(0).cumprod(1).softmax(0).logSoftmax(1);
  // reductions and sorting
  a.sum(0).mean().add(a.var(0).std()).add(a.norm(2, 1)).add(a.max(0)).add(a.min(0));
  a.argmax(0).add(a.argmin(0));
  a.sort(0)[0].argsort(1);
  a.topk(2, 1);
  torch.eigh(a.add(a.T));
  // in place
  const b = a.clone();
  b.copy_(a).add_(a, 2).mul_(2).fill_(1).zero_();
  b.detach();
  // torch.nn.functional
  torch.conv2d(x, torch.randn([4, 1, 3, 3]), torch.zeros([4]), { padding: 1, groups: 4 });
  torch.linear(a, torch.randn([2, 3]));
  torch.conv1x1(x, torch.randn([3, 4]), torch.zeros([3]));
  torch.groupNorm(x, 2, torch.ones([4]), torch.zeros([4]));
  torch.layerNorm(a, [3]);
  torch.batchNorm(x, torch.zeros([4]), torch.ones([4]), { weight: torch.ones([4]) });
  torch.interpolate(x, { scaleFactor: 2 });
  torch.pad(x, [1, 1, 1, 1]);
  torch.dropout(x, 0.5, false);
  torch.mseLoss(a, b);
  torch.crossEntropy(a, long([0, 1, 2]));
  torch.avgPool2d(x, 2);
  torch.maxPool2d(x, 2);
  torch.adaptiveAvgPool2d(x, 1);
}

const isTensor = (a: unknown, shape: number[]): boolean => torch.isObservedTensor(a) && (a as ObservedTensor).shape.join() === shape.join();

describe("OP_RULES", () => {
  test("every native function has a rule or is listed as no op, and every listed name is native", () => {
    const functions = Object.keys(native).filter((name) => typeof native[name] === "function");
    const neither = functions.filter((name) => !OP_RULES.has(name) && !NOT_OPS.has(name));
    const both = functions.filter((name) => OP_RULES.has(name) && NOT_OPS.has(name));
    const stale = [...OP_RULES.keys(), ...NOT_OPS].filter((name) => !functions.includes(name));
    assert.deepEqual({ neither, both, stale }, { neither: [], both: [], stale: [] });
  });

  test("each rule names exactly the arguments its callers pass, and every rule is met", () => {
    const ops = trace(everyOp);
    const wrong = ops.filter((op) => Object.keys(op.args).join() !== Object.keys(OP_RULES.get(op.op)?.args ?? {}).join());
    assert.deepEqual(wrong.map((op) => `${op.op}(${Object.keys(op.args).join(", ")})`), []);
    const seen = new Set(ops.map((op) => op.op));
    assert.deepEqual([...OP_RULES.keys()].filter((name) => !seen.has(name)), []);
  });

  test("traced layers, norms and joins read their arguments by name", () => {
    const x = torch.randn([1, 4, 6, 6]);
    const [conv, linear, norm, cat] = trace(() => {
      torch.conv2d(x, torch.randn([8, 2, 3, 3]), null, { stride: 2, padding: 1, groups: 2 });
      torch.linear(torch.zeros([5, 3]), torch.randn([2, 3]), torch.zeros([2]));
      torch.groupNorm(x, 2, torch.ones([4]), null, 1e-6);
      torch.cat([x, x], 1);
    });
    assert.equal(conv!.op, "conv2d");
    assert.ok(isTensor(conv!.args.input, [1, 4, 6, 6]) && isTensor(conv!.args.weight, [8, 2, 3, 3]));
    assert.deepEqual([conv!.args.bias, conv!.args.stride, conv!.args.padding, conv!.args.dilation, conv!.args.groups], [null, [2, 2], [1, 1], [1, 1], 2]);
    assert.ok(isTensor(linear!.args.input, [5, 3]) && isTensor(linear!.args.weight, [2, 3]) && isTensor(linear!.args.bias, [2]));
    assert.deepEqual([norm!.args.numGroups, norm!.args.bias, norm!.args.eps], [2, null, 1e-6]);
    assert.ok(isTensor(norm!.args.weight, [4]));
    assert.equal(cat!.args.dim, 1);
    assert.ok(Array.isArray(cat!.args.tensors) && cat!.args.tensors.every((t) => isTensor(t, [1, 4, 6, 6])));
  });

  test("operands are tensors or scalars as the op's mask says", () => {
    const a = torch.randn([2, 2]);
    const positive = a.gt(0);
    const b = a.clone();
    const [add, radd, where, addInPlace] = trace(() => {
      a.add(3);
      torch.add(3, a);
      torch.where(positive, 0, a);
      b.add_(1, 2);
    });
    assert.ok(isTensor(add!.args.input, [2, 2]));
    assert.deepEqual([add!.args.other, add!.args.scalarMask], [3, 2]);
    assert.equal(radd!.args.input, 3);
    assert.ok(isTensor(radd!.args.other, [2, 2]));
    assert.ok(isTensor(where!.args.condition, [2, 2]) && isTensor(where!.args.other, [2, 2]));
    assert.equal(where!.args.input, 0);
    assert.deepEqual([addInPlace!.args.other, addInPlace!.args.alpha, addInPlace!.args.otherIsScalar], [1, 2, true]);
  });
});

describe("an op without a rule", () => {
  // A stand-in for a native function added to the addon but not to OP_RULES.
  const clone = native.clone.bind(native);
  const unruled = (t: Tensor, k: number): Tensor => new Tensor((native.unruled as (h: Handle, k: number) => Handle)(t.handle, k));

  test("is reported with its first argument as the input tensor and the others by position", () => {
    native.unruled = (h: Handle) => clone(h);
    try {
      const [op] = trace(() => unruled(torch.zeros([2]), 7));
      assert.equal(op!.op, "unruled");
      assert.deepEqual(Object.keys(op!.args), ["input", "arg1"]);
      assert.ok(isTensor(op!.args.input, [2]));
      assert.equal(op!.args.arg1, 7);
    } finally {
      delete native.unruled;
    }
  });

  test("freezes the channels it is given", () => {
    class Net extends Module {
      readonly fc1 = this.registerModule("fc1", new Linear(3, 4));
      readonly fc2 = this.registerModule("fc2", new Linear(4, 2));
      forward(x: Tensor, through: (t: Tensor) => Tensor): Tensor {
        return this.fc2.forward(through(this.fc1.forward(x)));
      }
    }
    const net = new Net();
    const x = torch.zeros([1, 3]);
    const frozen = (through: (t: Tensor) => Tensor): boolean => {
      const graph = DependencyGraph.build(net, () => net.forward(x, through));
      return graph.layer("fc1")!.out.ids.every((id) => graph.sets.isFrozen(id));
    };
    native.unruled = (h: Handle) => clone(h);
    try {
      assert.equal(frozen((t) => t.clone()), false, "a clone keeps fc1's channels prunable");
      assert.equal(frozen((t) => unruled(t, 0)), true);
    } finally {
      delete native.unruled;
    }
  });
});
