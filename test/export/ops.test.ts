// The exporter's op table in onnxruntime: a module that runs nearly every exportable op (views,
// indexing, element-wise math with tensors and scalars, reductions, conv/linear/norms, pooling,
// padding, constants made inside the forward) must compute the same in onnxruntime at batch sizes
// it was not traced at; an op without an ONNX form, or a random tensor made inside the forward,
// is an error that names the op and the layer.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Conv2d, GroupNorm, Linear, Module } from "../../src/nn/index.js";
import { exportOnnx, ONNX_EMITTERS, OnnxExportError, OnnxSession, type ExportSpec } from "../../src/export/index.js";
import { maxAbsDiff } from "../helpers/assert.js";

class OpZoo extends Module {
  readonly conv: Conv2d;
  readonly proj: Linear;
  readonly norm: GroupNorm;

  constructor() {
    super();
    this.conv = this.registerModule("conv", new Conv2d(2, 4, 3, { stride: 2, padding: 1 }));
    this.proj = this.registerModule("proj", new Linear(4, 6));
    this.norm = this.registerModule("norm", new GroupNorm(2, 4));
    this.registerBuffer("running_mean", torch.tensor([0.1, -0.2, 0.3, 0]));
    this.registerBuffer("running_var", torch.tensor([1, 0.5, 2, 1.5]));
  }

  /** x [B, 2, 8, 8] -> [B, K]: every op's result, flattened per sample and concatenated. */
  forward(x: Tensor): Tensor {
    const pieces: Tensor[] = [];
    const keep = (t: Tensor): void => void pieces.push(t.float().reshape(t.shape[0]!, -1));
    const h = this.conv.forward(x); // [B, 4, 4, 4]
    const n = this.norm.forward(h).silu();
    keep(n);
    keep(torch.layerNorm(n, [4, 4], null, null, 1e-5));
    keep(torch.batchNorm(n, this.buffer("running_mean"), this.buffer("running_var"), { eps: 1e-5 }));
    // attention-like: linear on tokens, matmuls, softmax
    const p = this.proj.forward(n.flatten(2).transpose(1, 2)); // [B, 16, 6]
    const scores = p.matmul(p.transpose(1, 2)).mul(0.1).softmax(-1);
    keep(scores.bmm(p));
    keep(torch.baddbmm(p, scores, p, { beta: 0.5, alpha: 2 }));
    keep(p.logSoftmax(1));
    keep(torch.conv1x1(n, this.proj.weight, this.proj.bias)); // the same projection on the channels
    // element-wise
    const a = n.abs().add(0.5);
    for (const t of [a.sqrt(), a.rsqrt(), a.log(), a.reciprocal(), n.exp(), n.sin(), n.cos(), n.tanh(), n.sigmoid(), n.relu(), n.neg(), n.sign()]) keep(t);
    for (const t of [n.mul(3).floor(), n.mul(3).ceil(), n.mul(3).round(), n.remainder(0.7), torch.sub(1, n).div(a).pow(2).maximum(n).minimum(h)]) keep(t);
    const mask = n.gt(0).logicalAnd(h.lt(0.5)).logicalOr(n.eq(0)).logicalNot();
    for (const t of [torch.where(mask, n, 0), mask, n.ne(h), n.le(h), n.ge(0.1), n.isfinite()]) keep(t);
    keep(n.clamp(-0.5, 0.5));
    keep(n.clamp(null, 0.2));
    keep(n.cumsum(1));
    // reductions
    for (const t of [n.sum(1), n.mean([2, 3], true), n.max(1), n.min(2, true), n.argmax(1), n.argmin(3), n.sum(1, false, "float64")]) keep(t);
    // spatial
    keep(torch.interpolate(n, { scaleFactor: 2 }));
    keep(torch.avgPool2d(h, 2));
    keep(torch.maxPool2d(h, 3, 1, 1));
    keep(torch.adaptiveAvgPool2d(h, 1));
    keep(torch.adaptiveAvgPool2d(h, 2));
    keep(torch.pad(h, [1, 0, 0, 2]));
    keep(torch.pad(h, [1, 1, 1, 1], { mode: "reflect" }));
    keep(torch.pad(h, [0, 2, 1, 0], { mode: "replicate" }));
    keep(torch.dropout(h, 0.3, false));
    // views and indexing
    keep(h.permute(0, 2, 3, 1).contiguous());
    keep(h.unsqueeze(1).squeeze(1));
    keep(h.view(h.shape[0]!, 4, 16));
    keep(h.narrow(1, 1, 2));
    keep(h.slice(2, 1, undefined, 2));
    keep(h.select(1, 2));
    keep(h.flip([2, 3]));
    keep(torch.cat(h.split(1, 1).reverse(), 1));
    keep(torch.stack(h.chunk(2, 3), 2));
    keep(h.indexSelect(1, torch.tensor([3, 0], { dtype: "int64" })));
    keep(h.gather(1, h.argmax(1, true)));
    keep(h.clone().detach().to("float64"));
    keep(h.select(1, 0).unsqueeze(1).expand(-1, 3, -1, -1));
    keep(h.repeat(1, 2, 1, 1));
    // constants made inside the forward
    keep(torch.arange(0, 4, 1).float().mul(h.select(3, 0).select(2, 0)));
    keep(torch.ones([1, 4, 1, 1]).add(h));
    keep(torch.full([h.shape[0]!, 4, 1, 1], 0.5).mul(h)); // one value, a batch-sized shape: expanded at run time
    return torch.cat(pieces, 1);
  }
}

const input = (batch: number): Tensor => torch.linspace(-2, 2, batch * 128).reshape(batch, 2, 8, 8).sin();

describe("the exporter's op table", () => {
  test("every emitter is for an op of OP_RULES, whose argument names it reads", () => {
    for (const op of ONNX_EMITTERS.keys()) assert.ok(torch.OP_RULES.has(op), `${op} has an emitter but no rule`);
  });

  test("a module running nearly every exportable op computes the same in onnxruntime", async () => {
    torch.manualSeed(7);
    const zoo = new OpZoo();
    const spec: ExportSpec = { inputs: [{ name: "x", example: input }], output: "y", forward: (x) => zoo.forward(x!) };
    const session = await OnnxSession.create(exportOnnx(zoo, spec).bytes);
    for (const batch of [1, 5]) {
      torch.manualSeed(batch);
      const x = torch.randn([batch, 2, 8, 8]);
      const expected = torch.noGrad(() => zoo.forward(x));
      const actual = (await session.run({ x })).y!;
      assert.deepEqual(actual.shape, expected.shape);
      assert.ok(maxAbsDiff(actual, expected) <= 1e-4, `batch ${batch}: max error ${maxAbsDiff(actual, expected)}`);
    }
    await session.release();
  });

  test("an op without an ONNX form names the op and the layer it follows", () => {
    torch.manualSeed(0);
    const module = new (class extends Module {
      readonly proj = this.registerModule("proj", new Linear(4, 4));
      forward(x: Tensor): Tensor {
        return this.proj.forward(x).sort(-1)[0];
      }
    })();
    const spec: ExportSpec = { inputs: [{ name: "x", example: (n) => torch.zeros([n, 4]) }], output: "y", forward: (x) => module.forward(x!) };
    assert.throws(() => exportOnnx(module, spec), (err: unknown) => {
      assert.ok(err instanceof OnnxExportError);
      assert.match(err.message, /op sort \(after layer proj\) has no ONNX form/);
      return true;
    });
  });

  test("a random tensor made inside the forward is an error, not a frozen constant", () => {
    const module = new (class extends Module {
      readonly proj = this.registerModule("proj", new Linear(4, 4));
      forward(x: Tensor): Tensor {
        return this.proj.forward(x.add(torch.randn([4])));
      }
    })();
    const spec: ExportSpec = { inputs: [{ name: "x", example: (n) => torch.zeros([n, 4]) }], output: "y", forward: (x) => module.forward(x!) };
    assert.throws(() => exportOnnx(module, spec), /op add \(before the first layer\): a tensor made inside the forward has other values/);
  });
});
