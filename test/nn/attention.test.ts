// Attention runs channels-first (1x1-convolution projections, no token transposes) unless it is
// traced, when it runs diffusers' op sequence on tokens (the order pruning must follow). Both
// must give the same values and the same gradients, in NCHW and in channels_last, with one head
// and several, the output in the input's layout; and the tracer must see the token sequence.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Attention } from "../../src/nn/index.js";
import { assertClose } from "../helpers/assert.js";

/** Output and the gradients of sum(output * weights) for the input and every parameter. */
function run(a: Attention, x: Tensor, traced: boolean): { out: number[]; grads: number[][] } {
  return torch.tidy(() => {
    const input = x.detach().requiresGrad_(true);
    torch.zeroGrad(a.parameters());
    const forward = () => a.forward(input);
    const out = traced ? torch.observeOps(() => {}, forward) : forward();
    // weights that differ per element, so a permuted output would give other gradients
    out.mul(torch.arange(0, out.numel, 1).reshape(...out.shape).sin()).sum().backward();
    return { out: out.toArray(), grads: [input.grad!.toArray(), ...a.parameters().map((p) => p.grad!.toArray())] };
  });
}

describe("Attention", () => {
  for (const [heads, layout] of [
    [1, "contiguous"],
    [1, "channels_last"],
    [2, "contiguous"],
    [2, "channels_last"],
  ] as const) {
    test(`${heads} head(s), ${layout}: the channels-first forward equals diffusers' token sequence, values and gradients`, () => {
      torch.manualSeed(3);
      const a = new Attention(8, { heads, dimHead: 8 / heads, normNumGroups: 2, eps: 1e-5, rescaleOutputFactor: 2 });
      // biases away from zero, so that a bias applied on the wrong axis shows
      torch.noGrad(() => a.parameters().forEach((p) => p.copy_(torch.randn([...p.shape]))));
      const x = torch.randn([2, 8, 3, 5]).contiguous(layout);
      const fast = run(a, x, false);
      const traced = run(a, x, true);
      const layoutOut = torch.tidy(() => torch.noGrad(() => a.forward(x)).isContiguous(layout));
      assert.ok(layoutOut, `the output keeps the ${layout} layout`);
      // float32 rounding: a few 1e-6 of the largest value compared (gradients reach ~50, and
      // to_k.bias's is 0 up to that rounding: softmax ignores a shift shared by all keys)
      const tol = (...v: number[][]) => 5e-6 * Math.max(1, ...v.flat().map(Math.abs));
      assertClose(fast.out, traced.out, tol(traced.out), "output");
      fast.grads.forEach((g, i) => assertClose(g, traced.grads[i]!, tol(...traced.grads), i === 0 ? "d/d input" : `d/d ${[...a.namedParameters()][i - 1]![0]}`));
      a.dispose();
      x.dispose();
    });
  }

  test("traced, the block runs linear layers on tokens; otherwise 1x1 convolutions", () => {
    const a = new Attention(4, { heads: 1, dimHead: 4, normNumGroups: 2, eps: 1e-5 });
    const x = torch.randn([1, 4, 2, 2]);
    const ops: string[] = [];
    torch.noGrad(() => torch.observeOps((op) => ops.push(op.op), () => a.forward(x).dispose()));
    assert.equal(ops.filter((op) => op === "linear").length, 4);
    assert.equal(ops.includes("conv1x1"), false);
    assert.equal(torch.isObserving(), false);
    a.dispose();
    x.dispose();
  });
});
