// Values of creation, views, math and reductions against closed forms and hand-computed cases.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";

const { tensor } = torch;

describe("creation", () => {
  test("constants, ranges and typed-array round trips", () => {
    assert.deepEqual(torch.zeros([2, 3]).toArray(), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(torch.ones([2]).toArray(), [1, 1]);
    assert.deepEqual(torch.full([3], 2.5).toArray(), [2.5, 2.5, 2.5]);
    assert.deepEqual(torch.arange(4).toArray(), [0, 1, 2, 3]);
    assert.equal(torch.arange(4).dtype, "int64");
    assertClose(torch.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]);
    assert.equal(torch.arange(0, 1, 0.25).dtype, "float32");
    assertClose(torch.linspace(-1, 1, 5), [-1, -0.5, 0, 0.5, 1]);
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, "float32");
    assert.deepEqual(t.toTypedArray(), new Float32Array([1, 2, 3, 4, 5, 6]));
    assert.equal(tensor([true, false]).dtype, "bool");
    const big = tensor(new BigInt64Array([1n, -2n, 3n]));
    assert.equal(big.dtype, "int64");
    assert.deepEqual(big.toTypedArray(), new BigInt64Array([1n, -2n, 3n]));
    assert.deepEqual(tensor(new Float64Array([0.1, 0.2]), { shape: [2, 1] }).shape, [2, 1]);
    assert.equal(tensor(new Float64Array([0.1])).toTypedArray()[0], 0.1); // no float32 rounding
    assert.equal(torch.scalarTensor(7).item(), 7);
    assert.deepEqual(torch.scalarTensor(7).shape, []);
  });

  test("float16 and bfloat16 bits load as float32", () => {
    // IEEE half: 0x3C00 = 1, 0xC000 = -2, 0x3555 ~ 0.33325; bfloat16: 0x3F80 = 1, 0x4049 = 3.140625
    const half = tensor(new Uint16Array([0x3c00, 0xc000, 0x3555]), { dtype: "float16" });
    assert.equal(half.dtype, "float32");
    assertClose(half, [1, -2, 0.333251953125], 0);
    const bf = tensor(new Uint16Array([0x3f80, 0x4049]), { dtype: "bfloat16" });
    assertClose(bf, [1, 3.140625], 0);
  });

  test("seeded random draws are reproducible and have the right distribution", () => {
    torch.manualSeed(123);
    const a = torch.randn([20000]);
    torch.manualSeed(123);
    const b = torch.randn([20000]);
    assert.ok(torch.equal(a, b));
    assert.ok(Math.abs(a.mean().item()) < 0.03);
    assert.ok(Math.abs(a.std().item() - 1) < 0.03);
    const u = torch.rand([20000]);
    assert.ok(u.min().item() >= 0 && u.max().item() < 1);
    assert.ok(Math.abs(u.mean().item() - 0.5) < 0.01);
    const r = torch.randint(3, 7, [1000]);
    assert.equal(r.dtype, "int64");
    assert.equal(r.min().item(), 3);
    assert.equal(r.max().item(), 6);
    const p = torch.randperm(10).toArray().sort((x, y) => x - y);
    assert.deepEqual(p, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe("dtype and broadcasting rules", () => {
  test("numbers act as Python scalars in type promotion", () => {
    const i = torch.arange(3);
    assert.equal(i.add(2).dtype, "int64");
    assert.equal(i.add(2.5).dtype, "float32");
    assert.equal(i.mul(torch.ones([3])).dtype, "float32");
    assert.equal(torch.ones([2]).add(torch.ones([2], { dtype: "float64" })).dtype, "float64");
    // a float64 scalar does not promote a float32 tensor (wrapped numbers keep the tensor's type)
    assert.equal(torch.ones([2]).mul(0.1).dtype, "float32");
    assert.equal(i.gt(1).dtype, "bool");
    assert.deepEqual(i.gt(1).toArray(), [0, 0, 1]);
    assert.deepEqual(i.div(2).toArray(), [0, 0.5, 1]); // true division, as torch.div
  });

  test("shapes broadcast from the trailing dimension", () => {
    const col = tensor([[1], [2]]); // [2, 1]
    const row = tensor([10, 20, 30]); // [3]
    const s = col.add(row);
    assert.deepEqual(s.shape, [2, 3]);
    assert.deepEqual(s.toArray(), [11, 21, 31, 12, 22, 32]);
    const bias = tensor([1, 2]).reshape(1, 2, 1, 1); // the time-embedding add pattern
    const feat = torch.zeros([2, 2, 2, 2]).add(bias);
    assert.deepEqual(feat.sum([0, 2, 3]).toArray(), [8, 16]);
    assert.deepEqual(torch.sub(10, row).toArray(), [0, -10, -20]); // scalar on the left
    assert.deepEqual(torch.div(60, row).toArray(), [6, 3, 2]);
  });
});

describe("views and indexing", () => {
  const t = tensor([[0, 1, 2], [3, 4, 5]]);

  test("reshape, permute, transpose, flatten, squeeze", () => {
    assert.deepEqual(t.reshape(3, 2).toArray(), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(t.reshape([3, -1]).shape, [3, 2]);
    assert.deepEqual(t.transpose(0, 1).toArray(), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(t.T.contiguous().toArray(), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(t.permute(1, 0).shape, [3, 2]);
    assert.deepEqual(t.unsqueeze(0).unsqueeze(-1).shape, [1, 2, 3, 1]);
    assert.deepEqual(t.unsqueeze(0).unsqueeze(-1).squeeze().shape, [2, 3]);
    assert.deepEqual(t.unsqueeze(0).squeeze(0).shape, [2, 3]);
    assert.deepEqual(t.reshape(1, 2, 3).flatten(1).shape, [1, 6]);
    assert.deepEqual(t.view(6).toArray(), [0, 1, 2, 3, 4, 5]);
    assert.ok(!t.transpose(0, 1).isContiguous());
  });

  test("narrow, slice, select, indexSelect, gather, flip", () => {
    assert.deepEqual(t.narrow(1, 1, 2).toArray(), [1, 2, 4, 5]);
    assert.deepEqual(t.slice(1, 0, undefined, 2).toArray(), [0, 2, 3, 5]);
    assert.deepEqual(t.slice(1, -1).toArray(), [2, 5]);
    assert.deepEqual(t.select(0, 1).toArray(), [3, 4, 5]);
    assert.deepEqual(t.indexSelect(1, tensor([2, 0], { dtype: "int64" })).toArray(), [2, 0, 5, 3]);
    assert.deepEqual(t.gather(1, tensor([[2], [0]], { dtype: "int64" })).toArray(), [2, 3]);
    assert.deepEqual(t.flip(1).toArray(), [2, 1, 0, 5, 4, 3]);
    assert.deepEqual(t.expand(2, 2, 3).shape, [2, 2, 3]);
    assert.deepEqual(tensor([1, 2]).repeat(2).toArray(), [1, 2, 1, 2]);
  });

  test("cat, stack, split, chunk", () => {
    assert.deepEqual(torch.cat([t, t], 0).shape, [4, 3]);
    assert.deepEqual(torch.cat([t, t.narrow(1, 0, 1)], 1).toArray(), [0, 1, 2, 0, 3, 4, 5, 3]);
    assert.deepEqual(torch.stack([t, t], 1).shape, [2, 2, 3]);
    const parts = t.split(2, 1);
    assert.deepEqual(parts.map((p) => p.shape), [[2, 2], [2, 1]]);
    assert.deepEqual(t.split([1, 2], 1)[1]!.toArray(), [1, 2, 4, 5]);
    assert.deepEqual(t.chunk(3, 1).map((c) => c.toArray()), [[0, 3], [1, 4], [2, 5]]);
  });

  test("views share storage; clone and contiguous copy", () => {
    const base = torch.zeros([4]);
    const v = base.narrow(0, 1, 2);
    v.fill_(7);
    assert.deepEqual(base.toArray(), [0, 7, 7, 0]);
    const c = base.clone();
    c.zero_();
    assert.deepEqual(base.toArray(), [0, 7, 7, 0]);
    const img = torch.randn([2, 3, 4, 4]);
    const cl = img.contiguous("channels_last");
    assert.ok(cl.isContiguous("channels_last"));
    assert.ok(torch.equal(cl, img)); // same values, another layout
  });
});

describe("math", () => {
  test("element-wise functions", () => {
    const x = tensor([-2, -0.5, 0, 1, 4], { dtype: "float64" });
    assertClose(x.abs(), [2, 0.5, 0, 1, 4]);
    assertClose(x.neg(), [2, 0.5, 0, -1, -4]);
    assertClose(x.sign(), [-1, -1, 0, 1, 1]);
    assertClose(x.exp(), [-2, -0.5, 0, 1, 4].map(Math.exp), 1e-12);
    assertClose(x.sin(), [-2, -0.5, 0, 1, 4].map(Math.sin), 1e-12);
    assertClose(x.cos(), [-2, -0.5, 0, 1, 4].map(Math.cos), 1e-12);
    assertClose(x.sigmoid(), [-2, -0.5, 0, 1, 4].map((v) => 1 / (1 + Math.exp(-v))), 1e-12);
    assertClose(x.silu(), [-2, -0.5, 0, 1, 4].map((v) => v / (1 + Math.exp(-v))), 1e-12);
    assertClose(x.tanh(), [-2, -0.5, 0, 1, 4].map(Math.tanh), 1e-12);
    assertClose(x.relu(), [0, 0, 0, 1, 4]);
    assertClose(x.clamp(-1, 1), [-1, -0.5, 0, 1, 1]);
    assertClose(x.clamp(null, 0), [-2, -0.5, 0, 0, 0]);
    const p = tensor([1, 4, 9], { dtype: "float64" });
    assertClose(p.sqrt(), [1, 2, 3], 1e-12);
    assertClose(p.rsqrt(), [1, 0.5, 1 / 3], 1e-12);
    assertClose(p.log(), [0, Math.log(4), Math.log(9)], 1e-12);
    assertClose(p.pow(0.5), [1, 2, 3], 1e-12);
    assertClose(torch.pow(2, p), [2, 16, 512], 1e-9);
    assertClose(p.reciprocal(), [1, 0.25, 1 / 9], 1e-12);
    assertClose(torch.where(x.gt(0), x, 0), [0, 0, 0, 1, 4]);
    assertClose(torch.where(x.gt(0), 1, x), [-2, -0.5, 0, 1, 1]);
    assertClose(tensor([1.5, -1.5, 2.5]).floor(), [1, -2, 2]);
    assertClose(tensor([1.5, -1.5, 2.5]).round(), [2, -2, 2]); // half to even, as torch.round
    assertClose(x.maximum(0.5), [0.5, 0.5, 0.5, 1, 4]);
    assertClose(tensor([5, -5]).remainder(3), [2, 1]); // Python's modulo sign
  });

  test("reductions", () => {
    const m = tensor([[1, 2, 3], [4, 5, 9]], { dtype: "float64" });
    assert.equal(m.sum().item(), 24);
    assertClose(m.sum(0), [5, 7, 12]);
    assertClose(m.sum(1, true), [6, 18]);
    assert.deepEqual(m.sum(1, true).shape, [2, 1]);
    assertClose(m.mean(1), [2, 6]);
    // unbiased variance of [4, 5, 9]: mean 6, squared deviations 4+1+9 = 14, / 2 = 7
    assertClose(m.var(1), [1, 7], 1e-12);
    assertClose(m.var(1, { correction: 0 }), [2 / 3, 14 / 3], 1e-12);
    assertClose(m.std(1), [1, Math.sqrt(7)], 1e-12);
    assert.equal(m.max().item(), 9);
    assertClose(m.max(0), [4, 5, 9]);
    assertClose(m.min(1), [1, 4]);
    assert.deepEqual(m.argmax(1).toArray(), [2, 2]);
    assert.equal(m.argmax().item(), 5);
    assertClose(m.norm(), [Math.sqrt(1 + 4 + 9 + 16 + 25 + 81)], 1e-12);
    assertClose(m.norm(1, 1), [6, 18], 1e-12);
    assertClose(m.cumsum(1), [1, 3, 6, 4, 9, 18]);
    assertClose(m.cumprod(1), [1, 2, 6, 4, 20, 180]);
    assert.equal(torch.trace(tensor([[1, 2], [3, 4]])).item(), 5);
  });

  test("sorting keeps ties in index order", () => {
    const s = tensor([3, 1, 2, 1]);
    const [values, indices] = s.sort();
    assertClose(values, [1, 1, 2, 3]);
    assert.deepEqual(indices.toArray(), [1, 3, 2, 0]);
    assert.deepEqual(s.argsort(-1, true).toArray(), [0, 2, 1, 3]);
    const [tv, ti] = s.topk(2);
    assertClose(tv, [3, 2]);
    assert.deepEqual(ti.toArray(), [0, 2]);
    assert.deepEqual(s.topk(2, -1, false)[1].toArray(), [1, 3]);
  });

  test("matmul, bmm, baddbmm, softmax", () => {
    const a = tensor([[1, 2], [3, 4]]);
    const b = tensor([[5, 6], [7, 8]]);
    assertClose(a.matmul(b), [19, 22, 43, 50]);
    assertClose(torch.bmm(a.unsqueeze(0), b.unsqueeze(0)), [19, 22, 43, 50]);
    const c = torch.ones([1, 2, 2]);
    assertClose(torch.baddbmm(c, a.unsqueeze(0), b.unsqueeze(0), { beta: 2, alpha: 0.5 }), [11.5, 13, 23.5, 27]);
    assertClose(torch.baddbmm(c, a.unsqueeze(0), b.unsqueeze(0), { beta: 0, alpha: 0.5 }), [9.5, 11, 21.5, 25]);
    const logits = tensor([[0, Math.log(3)]], { dtype: "float64" });
    assertClose(logits.softmax(-1), [0.25, 0.75], 1e-12);
    assertClose(logits.logSoftmax(-1), [Math.log(0.25), Math.log(0.75)], 1e-12);
  });

  test("eigh of a symmetric matrix", () => {
    const [l, q] = torch.eigh(tensor([[2, 1], [1, 2]], { dtype: "float64" }));
    assertClose(l, [1, 3], 1e-12);
    // Q diag(l) Q^T rebuilds the matrix
    const rebuilt = q.mul(l.unsqueeze(0)).matmul(q.T);
    assertClose(rebuilt, [2, 1, 1, 2], 1e-12);
  });

  test("in-place updates", () => {
    const t = torch.zeros([3]);
    t.add_(tensor([1, 2, 3]), 2).mul_(0.5).add_(1);
    assertClose(t, [2, 3, 4]);
    t.copy_(tensor([9, 8, 7]));
    assertClose(t, [9, 8, 7]);
  });
});

describe("nn functional", () => {
  test("conv2d: hand-computed cases", () => {
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], { shape: [1, 1, 3, 3] });
    // 2x2 all-ones kernel, no padding: sums of 2x2 windows, plus bias 1
    const y = torch.conv2d(x, torch.ones([1, 1, 2, 2]), tensor([1]));
    assertClose(y, [1 + 1 + 2 + 4 + 5, 1 + 2 + 3 + 5 + 6, 1 + 4 + 5 + 7 + 8, 1 + 5 + 6 + 8 + 9]);
    // 3x3 sum kernel with padding 1: the corner sees 1+2+4+5
    const z = torch.conv2d(x, torch.ones([1, 1, 3, 3]), null, { padding: 1 });
    assert.deepEqual(z.shape, [1, 1, 3, 3]);
    assertClose(z.narrow(2, 0, 1).narrow(3, 0, 1), [12]);
    assertClose(z.narrow(2, 1, 1).narrow(3, 1, 1), [45]);
    // stride 2 with padding 1: output 2x2
    assert.deepEqual(torch.conv2d(x, torch.ones([2, 1, 3, 3]), null, { stride: 2, padding: 1 }).shape, [1, 2, 2, 2]);
    // groups 2: each output channel sees only its own input channel
    const two = torch.cat([x, x.mul(10)], 1);
    const g = torch.conv2d(two, torch.ones([2, 1, 1, 1]), null, { groups: 2 });
    assertClose(g.sum([2, 3]), [45, 450]);
  });

  test("linear", () => {
    const x = tensor([[1, 2]]);
    const w = tensor([[1, 0], [0, 1], [1, 1]]);
    assertClose(torch.linear(x, w, tensor([0, 0, 10])), [1, 2, 13]);
  });

  test("groupNorm normalises each group of channels", () => {
    torch.manualSeed(1);
    const x = torch.randn([2, 4, 3, 3], { dtype: "float64" }).mul(3).add(5);
    const y = torch.groupNorm(x, 2, null, null, 1e-5);
    const groups = y.reshape(2, 2, -1);
    assertClose(groups.mean(-1), [0, 0, 0, 0], 1e-10);
    assertClose(groups.var(-1, { correction: 0 }), [1, 1, 1, 1], 1e-5);
    // affine: weight and bias per channel
    const w = tensor([1, 2, 3, 4], { dtype: "float64" });
    const b = tensor([0, 1, 0, 1], { dtype: "float64" });
    const ya = torch.groupNorm(x, 2, w, b, 1e-5);
    assertClose(ya, y.mul(w.reshape(1, 4, 1, 1)).add(b.reshape(1, 4, 1, 1)), 1e-12);
  });

  test("nearest upsampling, pad, dropout, losses, pooling", () => {
    const x = tensor([[1, 2], [3, 4]]).reshape(1, 1, 2, 2);
    assertClose(torch.interpolate(x, { scaleFactor: 2 }), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    assert.deepEqual(torch.interpolate(x, { size: [3, 5] }).shape, [1, 1, 3, 5]);
    // pad (left 0, right 1, top 0, bottom 1): Downsample2D's padding for padding=0
    const p = torch.pad(x, [0, 1, 0, 1]);
    assertClose(p, [1, 2, 0, 3, 4, 0, 0, 0, 0]);
    assertClose(torch.dropout(x, 0.5, false), x);
    assertClose(torch.dropout(x, 1, true), [0, 0, 0, 0]);
    torch.manualSeed(3);
    const d = torch.dropout(torch.ones([100000]), 0.25, true);
    assert.ok(Math.abs(d.mean().item() - 1) < 0.01); // kept values are scaled by 1 / (1 - p)
    assert.ok(Math.abs(d.eq(0).float().mean().item() - 0.25) < 0.01);
    assertClose(torch.mseLoss(tensor([1, 2, 3]), tensor([1, 0, 0])), [13 / 3], 1e-6);
    assertClose(torch.mseLoss(tensor([1, 2, 3]), tensor([1, 0, 0]), "sum"), [13]);
    const logits = tensor([[0, Math.log(3)]]);
    assertClose(torch.crossEntropy(logits, tensor([1], { dtype: "int64" })), [-Math.log(0.75)], 1e-6);
    assertClose(torch.avgPool2d(x, 2), [2.5]);
    assertClose(torch.maxPool2d(x, 2), [4]);
    assertClose(torch.adaptiveAvgPool2d(x, 1), [2.5]);
  });
});
