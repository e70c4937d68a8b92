// Analytic gradients from libtorch's autograd, through our API, against central finite
// differences in float64: a wrong backward (sign, missing factor, a transposed operand) fails.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { compare, f64, gradcheck, type GradcheckOptions, type GradcheckResult } from "../helpers/gradcheck.js";

const TOL = 1e-6;
const randn = (...shape: number[]): Tensor => torch.randn(shape, { dtype: "float64" });

/**
 * Checks every named input's gradient; names only make failures readable. Also asserts that
 * the gradients are not all ~0 (a detached graph would pass a 0-vs-0 check vacuously) and that
 * the check left no native tensor behind.
 */
function checkGrads<K extends string>(
  inputs: Record<K, Tensor>,
  fn: (x: Record<K, Tensor>) => Tensor,
  options: GradcheckOptions = {},
): GradcheckResult {
  const names = Object.keys(inputs) as K[];
  const before = torch.memory().numTensors;
  const result = gradcheck(
    (ts) => fn(Object.fromEntries(names.map((n, i) => [n, ts[i]!])) as Record<K, Tensor>),
    names.map((n) => inputs[n]),
    { tol: TOL, ...options },
  );
  assert.equal(torch.memory().numTensors, before, "gradcheck leaked native tensors");
  result.comparisons.forEach((c, i) => {
    const { index, analytic, numeric } = c.worst;
    assert.ok(c.ok, `d/d${names[i]}: error ${c.maxErr.toExponential(2)} at [${index}]: analytic ${analytic}, numeric ${numeric}`);
    const largest = result.analytic[i]!.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
    assert.ok(largest > 1e-3, `d/d${names[i]} is ~0 everywhere (max ${largest}): the check would be vacuous`);
  });
  return result;
}

describe("gradcheck (float64, central differences)", () => {
  test("conv2d with bias, stride 1, padding 1: d/d input, weight, bias", () => {
    torch.manualSeed(1);
    checkGrads({ x: randn(2, 3, 5, 5), w: randn(4, 3, 3, 3), b: randn(4) }, ({ x, w, b }) =>
      torch.conv2d(x, w, b, { stride: 1, padding: 1 }),
    );
  });

  test("conv2d with bias, stride 2, groups 2: d/d input, weight, bias", () => {
    torch.manualSeed(2);
    // Odd input size with stride 2: the last row/column is only partly covered, a classic edge.
    checkGrads({ x: randn(2, 4, 7, 7), w: randn(6, 2, 3, 3), b: randn(6) }, ({ x, w, b }) =>
      torch.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }),
    );
  });

  test("linear on a batched [..., in] input: d/d input, weight, bias", () => {
    torch.manualSeed(3);
    checkGrads({ x: randn(2, 3, 5), w: randn(4, 5), b: randn(4) }, ({ x, w, b }) => torch.linear(x, w, b));
  });

  test("groupNorm with affine weight and bias: d/d input, weight, bias", () => {
    torch.manualSeed(4);
    checkGrads({ x: randn(2, 6, 3, 3), w: randn(6), b: randn(6) }, ({ x, w, b }) => torch.groupNorm(x, 3, w, b));
  });

  test("softmax attention with matmul/transpose: d/d q, k, v", () => {
    torch.manualSeed(5);
    const scale = 1 / Math.sqrt(8);
    // Lq != Lk and d_k != d_v, so a swapped operand would not even have the right shape.
    checkGrads({ q: randn(2, 4, 8), k: randn(2, 5, 8), v: randn(2, 5, 6) }, ({ q, k, v }) =>
      torch.softmax(q.matmul(k.transpose(-2, -1)).mul(scale), -1).matmul(v),
    );
  });

  test("softmax attention with baddbmm/bmm: d/d q, k, v", () => {
    torch.manualSeed(6);
    const scale = 1 / Math.sqrt(8);
    // beta 0 on an empty tensor, as diffusers' attention calls it
    const empty = torch.empty([2, 4, 5], { dtype: "float64" });
    checkGrads({ q: randn(2, 4, 8), k: randn(2, 5, 8), v: randn(2, 5, 6) }, ({ q, k, v }) =>
      torch.baddbmm(empty, q, k.transpose(1, 2), { beta: 0, alpha: scale }).softmax(-1).bmm(v),
    );
  });

  // libtorch 1.13's small-matrix CPU baddbmm kernel computes out = beta * out + ..., reading its
  // freshly allocated (uninitialised) output, so beta 0 turned garbage NaN/Inf into NaN at random
  // (pytorch/pytorch#80588); the addon runs beta 0 as alpha * bmm.
  test("baddbmm with beta 0 ignores its input (NaN included) and never yields NaN", () => {
    torch.manualSeed(12);
    let nans = 0;
    for (let i = 0; i < 200; i++) {
      torch.tidy(() => {
        const input = i % 2 === 0 ? torch.zeros([2, 4, 5]) : torch.full([1, 4, 5], NaN);
        const out = torch.baddbmm(input, torch.randn([2, 4, 8]), torch.randn([2, 8, 5]), { beta: 0 });
        if (out.isnan().toArray().some((v) => v !== 0)) nans++;
      });
    }
    assert.equal(nans, 0, `${nans} of 200 outputs had NaN`);
  });

  test("mseLoss: d/d both arguments", () => {
    torch.manualSeed(7);
    checkGrads({ a: randn(3, 4), b: randn(3, 4) }, ({ a, b }) => torch.mseLoss(a, b));
    checkGrads({ a: randn(3, 4), b: randn(3, 4) }, ({ a, b }) => torch.mseLoss(a, b, "sum"));
  });

  test("mseLoss gradient has the closed form 2 (a - b) / N", () => {
    torch.manualSeed(8);
    torch.tidy(() => {
      const a = randn(3, 4).requiresGrad_();
      const b = randn(3, 4).requiresGrad_();
      torch.mseLoss(a, b).backward();
      const [av, bv] = [f64(a), f64(b)];
      const expected = av.map((x, i) => (2 * (x - bv[i]!)) / av.length);
      const [ga, gb] = [f64(a.grad!), f64(b.grad!)];
      expected.forEach((e, i) => {
        assert.ok(Math.abs(ga[i]! - e) <= 1e-12, `d/da[${i}] = ${ga[i]}, expected ${e}`);
        assert.ok(Math.abs(gb[i]! + e) <= 1e-12, `d/db[${i}] = ${gb[i]}, expected ${-e}`);
      });
    });
  });

  test("silu: d/d input", () => {
    torch.manualSeed(9);
    checkGrads({ x: randn(50).mul(3) }, ({ x }) => torch.silu(x));
  });

  test("time embedding sin/cos -> linear -> silu -> linear: d/d t and the MLP", () => {
    torch.manualSeed(10);
    // As a diffusion UNet embeds timesteps: [sin(t f), cos(t f)] over geometric frequencies f.
    const half = 4;
    const freqs = torch.tensor(
      Float64Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half)),
      { shape: [1, half], dtype: "float64" },
    );
    const t = torch.rand([3], { dtype: "float64" }).mul(10);
    checkGrads({ t, w1: randn(16, 2 * half), b1: randn(16), w2: randn(8, 16), b2: randn(8) }, ({ t, w1, b1, w2, b2 }) => {
      const args = t.unsqueeze(1).mul(freqs);
      const emb = torch.cat([args.sin(), args.cos()], -1);
      return torch.linear(torch.silu(torch.linear(emb, w1, b1)), w2, b2);
    });
  });

  test("negative control: a wrong analytic gradient fails the comparison", () => {
    torch.manualSeed(11);
    const r = checkGrads({ x: randn(3, 5), w: randn(4, 5), b: randn(4) }, ({ x, w, b }) => torch.linear(x, w, b));
    r.analytic.forEach((g, i) => {
      const { indices, values } = r.numeric[i]!;
      assert.ok(compare(g, values, indices, TOL).ok, "the true gradient passes");
      // A missing or extra factor of 2, and a sign error, must each fail.
      for (const factor of [2, 0.5, -1]) {
        const wrong = g.map((v) => v * factor);
        assert.ok(!compare(wrong, values, indices, TOL).ok, `gradient x ${factor} must fail`);
      }
      // One wrong element among many must fail too.
      const oneOff = Float64Array.from(g);
      oneOff[indices[0]!]! += 1e-3;
      assert.ok(!compare(oneOff, values, indices, TOL).ok, "one element off by 1e-3 must fail");
      assert.ok(!compare(g.map(() => NaN), values, indices, TOL).ok, "NaN must fail");
    });
  });
});
