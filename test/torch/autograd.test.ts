// Autograd through the API, and the optimizer kernels against their formulas computed in JS.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { engineSmoke } from "../helpers/smoke.js";
import { assertClose } from "../helpers/assert.js";

const f64 = (data: number[]) => torch.tensor(data, { dtype: "float64" });

describe("autograd", () => {
  test("closed-form gradients, accumulation and reset", () => {
    const x = f64([1, -2, 3]).requiresGrad_();
    assert.ok(x.requiresGrad && x.isLeaf);
    x.pow(2).sum().backward();
    assertClose(x.grad!, [2, -4, 6]);
    x.mul(x).sum().backward(); // gradients accumulate, as in PyTorch
    assertClose(x.grad!, [4, -8, 12]);
    torch.zeroGrad([x]);
    assert.equal(x.grad, null);
    x.grad = f64([1, 1, 1]);
    assertClose(x.grad!, [1, 1, 1]);
  });

  test("a non-scalar output takes its gradient; retainGrad keeps an intermediate's", () => {
    const x = f64([1, 2]).requiresGrad_();
    const y = x.mul(3);
    y.retainGrad();
    const z = y.exp();
    z.backward(f64([1, 0.5]));
    assertClose(y.grad!, [Math.exp(3), 0.5 * Math.exp(6)], 1e-9);
    assertClose(x.grad!, [3 * Math.exp(3), 1.5 * Math.exp(6)], 1e-9);
  });

  test("noGrad, enableGrad and detach stop or restore recording", () => {
    const w = f64([2]).requiresGrad_();
    const a = torch.noGrad(() => w.mul(3));
    assert.equal(a.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    const b = torch.noGrad(() => torch.enableGrad(() => w.mul(3)));
    assert.equal(b.requiresGrad, true);
    assert.equal(w.mul(3).detach().requiresGrad, false);
    assert.throws(() => torch.noGrad(() => { throw new Error("inside"); }), /inside/);
    assert.equal(torch.isGradEnabled(), true); // restored after a throw
  });
});

describe("optimizer kernels", () => {
  test("adamwStep follows torch.optim.AdamW", () => {
    const hyper = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 };
    const p0 = [0.5, -1, 2];
    const grads = [[0.1, -0.2, 0.3], [1, 0.5, -0.25], [-0.3, 0.2, 0.1]];
    const p = f64(p0).requiresGrad_();
    const m = f64([0, 0, 0]);
    const v = f64([0, 0, 0]);
    // reference in JS
    const ref = [...p0];
    const mr = [0, 0, 0];
    const vr = [0, 0, 0];
    for (let step = 1; step <= grads.length; step++) {
      const g = grads[step - 1]!;
      p.grad = f64(g);
      torch.adamwStep([p], [m], [v], step, hyper);
      for (let i = 0; i < 3; i++) {
        ref[i]! *= 1 - hyper.lr * hyper.weightDecay;
        mr[i] = hyper.beta1 * mr[i]! + (1 - hyper.beta1) * g[i]!;
        vr[i] = hyper.beta2 * vr[i]! + (1 - hyper.beta2) * g[i]! ** 2;
        const mHat = mr[i]! / (1 - hyper.beta1 ** step);
        const vHat = vr[i]! / (1 - hyper.beta2 ** step);
        ref[i]! -= (hyper.lr * mHat) / (Math.sqrt(vHat) + hyper.eps);
      }
    }
    assertClose(p, ref, 1e-12, "parameters");
    assertClose(m, mr, 1e-12, "first moment");
    assertClose(v, vr, 1e-12, "second moment");
  });

  test("adamwStep skips parameters without a gradient", () => {
    const p = f64([1, 2]).requiresGrad_();
    torch.adamwStep([p], [f64([0, 0])], [f64([0, 0])], 1, { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 });
    assertClose(p, [1, 2], 0);
  });

  test("clipGradNorm scales by maxNorm / (norm + 1e-6) only above the limit", () => {
    const a = f64([3]).requiresGrad_();
    const b = f64([0, 4]).requiresGrad_();
    a.grad = f64([3]);
    b.grad = f64([0, 4]);
    assert.equal(torch.clipGradNorm([a, b], 10), 5);
    assertClose(b.grad!, [0, 4], 0);
    assertClose([torch.clipGradNorm([a, b], 1)], [5], 1e-12);
    const c = 1 / (5 + 1e-6);
    assertClose(a.grad!, [3 * c], 1e-12);
    assertClose(b.grad!, [0, 4 * c], 1e-12);
  });

  test("emaUpdate is decay * ema + (1 - decay) * param", () => {
    const ema = f64([1, 1]);
    torch.emaUpdate([ema], [f64([3, -1])], 0.75);
    assertClose(ema, [0.75 + 0.75, 0.75 - 0.25], 1e-12);
  });
});

describe("training from TypeScript", () => {
  test("a conv net trained on epsilon-prediction lowers its loss", () => {
    const losses = engineSmoke({ steps: 150, seed: 1 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const head = mean(losses.slice(0, 10));
    const tail = mean(losses.slice(-20));
    assert.ok(tail < 0.5 * head, `loss ${head} -> ${tail}`);
    assert.ok(losses.every(Number.isFinite));
  });
});
