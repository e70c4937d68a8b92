// DDPMScheduler: the forward process and the posterior step against float64 closed forms.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DDPMScheduler } from "../../src/diffusion/schedulers/index.js";
import * as torch from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";
import { normals, tensorOf } from "./scheduler-helpers.js";

const shape = [2, 3, 4, 4];
const n = 2 * 3 * 4 * 4;
const x0 = normals(n, 1, 0.4).map((v) => Math.max(-0.95, Math.min(0.95, v)));
const noise = normals(n, 2);
const z = normals(n, 3);

/** DDPM's posterior mean and variance between t and prevT, in float64. */
function posterior(acp: number[], t: number, prevT: number, xt: ArrayLike<number>, x0Hat: ArrayLike<number>): { mean: number[]; varSmall: number; varLarge: number } {
  const a = acp[t]!;
  const ap = prevT >= 0 ? acp[prevT]! : 1;
  const alphaT = a / ap;
  const betaT = 1 - alphaT;
  const mean = Array.from(xt, (x, i) => ((Math.sqrt(ap) * betaT) / (1 - a)) * x0Hat[i]! + ((Math.sqrt(alphaT) * (1 - ap)) / (1 - a)) * x);
  return { mean, varSmall: ((1 - ap) / (1 - a)) * betaT, varLarge: betaT };
}

describe("DDPMScheduler", () => {
  const s = new DDPMScheduler();
  const acp = s.alphasCumprod.toArray();

  test("addNoise: sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise, per sample", () => {
    const t = torch.tensor([10, 900], { dtype: "int64" });
    const noisy = s.addNoise(tensorOf(x0, shape), tensorOf(noise, shape), t);
    assert.deepEqual(noisy.shape, shape);
    const per = n / 2;
    const expected = Array.from(x0, (v, i) => {
      const a = acp[i < per ? 10 : 900]!;
      return Math.sqrt(a) * v + Math.sqrt(1 - a) * noise[i]!;
    });
    assertClose(noisy, expected, 1e-6);
  });

  test("a model that predicts the true noise recovers x0, and the step is the posterior mean plus sigma z", () => {
    for (const t of [1, 10, 500, 999]) {
      torch.tidy(() => {
        const xt = s.addNoise(tensorOf(x0, shape), tensorOf(noise, shape), torch.tensor([t, t], { dtype: "int64" }));
        const { prevSample, predOriginalSample } = s.step(tensorOf(noise, shape), t, xt, { varianceNoise: tensorOf(z, shape) });
        assertClose(predOriginalSample, x0, 1e-4, `x0 at t=${t}`);
        const { mean, varSmall } = posterior(acp, t, t - 1, xt.toArray(), x0);
        assertClose(prevSample, mean.map((m, i) => m + Math.sqrt(varSmall) * z[i]!), 2e-4, `x_{t-1} at t=${t}`);
      });
    }
  });

  test("t = 0 returns x0 without noise", () => {
    const xt = tensorOf(normals(n, 4), shape);
    const { prevSample, predOriginalSample } = s.step(tensorOf(noise, shape), 0, xt, { varianceNoise: tensorOf(z, shape) });
    assertClose(prevSample, predOriginalSample, 1e-6);
  });

  test("setTimesteps(10) steps from 200 to 100; fixed_large uses beta of that step", () => {
    const small = new DDPMScheduler();
    const large = new DDPMScheduler({ variance_type: "fixed_large" });
    for (const sched of [small, large]) sched.setTimesteps(10);
    assert.deepEqual(small.timesteps, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    assert.equal(small.previousTimestep(900), 800);
    assert.equal(small.previousTimestep(0), -100, "diffusers' t - T // n: negative means the clean image");
    const xt = normals(n, 5);
    const eps = normals(n, 6);
    const a = acp[200]!;
    const x0Hat = Array.from(xt, (x, i) => Math.max(-1, Math.min(1, (x - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a))));
    const { mean, varSmall, varLarge } = posterior(acp, 200, 100, xt, x0Hat);
    assert.ok(varLarge > 2 * varSmall, "the two variances differ enough to tell apart");
    const out = small.step(tensorOf(eps, shape), 200, tensorOf(xt, shape), { varianceNoise: tensorOf(z, shape) });
    assertClose(out.prevSample, mean.map((m, i) => m + Math.sqrt(varSmall) * z[i]!), 1e-5, "fixed_small");
    const big = large.step(tensorOf(eps, shape), 200, tensorOf(xt, shape), { varianceNoise: tensorOf(z, shape) });
    assertClose(big.prevSample, mean.map((m, i) => m + Math.sqrt(varLarge) * z[i]!), 1e-5, "fixed_large");
  });

  test("clip_sample clamps x0 to clip_sample_range", () => {
    const xt = torch.zeros(shape);
    const eps = torch.full(shape, -10); // x0 = 10 sqrt(1 - a) / sqrt(a), about 13.6 at t = 500
    assertClose(s.step(eps, 500, xt).predOriginalSample.max().reshape(1), [1], 0);
    const wide = new DDPMScheduler({ clip_sample_range: 2 });
    assertClose(wide.step(eps, 500, xt).predOriginalSample.min().reshape(1), [2], 0);
    const free = new DDPMScheduler({ clip_sample: false });
    const expected = (10 * Math.sqrt(1 - acp[500]!)) / Math.sqrt(acp[500]!);
    assertClose(free.step(eps, 500, xt).predOriginalSample.max().reshape(1), [expected], 1e-4);
  });

  test("default noise comes from torch.randn: seeded, with the posterior's standard deviation", () => {
    const big = [4, 1, 32, 32];
    const xt = torch.zeros(big);
    const eps = torch.zeros(big);
    torch.manualSeed(7);
    const a = s.step(eps, 300, xt).prevSample;
    torch.manualSeed(7);
    const b = s.step(eps, 300, xt).prevSample;
    assert.ok(torch.equal(a, b));
    const { varSmall } = posterior(acp, 300, 299, [0], [0]);
    const std = a.std().item() / Math.sqrt(varSmall);
    assert.ok(Math.abs(std - 1) < 0.05, `noise std / sigma = ${std}`);
  });

  test("step frees its intermediates", () => {
    const xt = tensorOf(x0, shape);
    const eps = tensorOf(noise, shape);
    const before = torch.memory().numTensors;
    const out = s.step(eps, 500, xt);
    assert.equal(torch.memory().numTensors, before + 2);
    torch.dispose(out);
    const noisy = s.addNoise(xt, eps, torch.tensor([3, 4], { dtype: "int64" }));
    assert.equal(torch.memory().numTensors, before + 2, "addNoise adds only its result (and the timesteps)");
    torch.dispose(noisy);
  });
});
