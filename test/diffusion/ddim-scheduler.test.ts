// DDIMScheduler: the update against float64 closed forms and a hand-written DDIM loop.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DDIMScheduler, DDPMScheduler, type SkipType } from "../../src/diffusion/schedulers/index.js";
import * as torch from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";
import { normals, tensorOf } from "./scheduler-helpers.js";

const shape = [2, 1, 8, 8];
const n = 2 * 8 * 8;
const x0 = normals(n, 11, 0.4).map((v) => Math.max(-0.95, Math.min(0.95, v)));
const noise = normals(n, 12);
const z = normals(n, 13);

/** x_t = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise, as a tensor. */
const noisyAt = (s: DDIMScheduler, t: number): torch.Tensor => s.addNoise(tensorOf(x0, shape), tensorOf(noise, shape), torch.tensor([t, t], { dtype: "int64" }));

describe("DDIMScheduler", () => {
  const s = new DDIMScheduler();
  const acp = s.alphasCumprod.toArray();

  test("step() before setTimesteps() is an error", () => {
    assert.throws(() => new DDIMScheduler().step(torch.zeros(shape), 10, torch.zeros(shape)), /setTimesteps/);
  });

  test("with the true noise, eta 0 lands on sqrt(acp_prev) x0 + sqrt(1 - acp_prev) noise", () => {
    s.setTimesteps(10);
    assert.deepEqual(s.timesteps, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    // The paper's sampler steps from t to t - 100, not to the next entry.
    for (const [t, prevT] of [[999, 899], [555, 455], [111, 11]] as const) {
      torch.tidy(() => {
        const { prevSample, predOriginalSample } = s.step(tensorOf(noise, shape), t, noisyAt(s, t));
        assertClose(predOriginalSample, x0, 1e-4, `x0 at t=${t}`);
        const ap = acp[prevT]!;
        assertClose(prevSample, Array.from(x0, (v, i) => Math.sqrt(ap) * v + Math.sqrt(1 - ap) * noise[i]!), 1e-4, `x_${prevT}`);
      });
    }
    // The last step goes to "before t = 0": alpha_prod 1 with set_alpha_to_one, else acp[0].
    assertClose(s.step(tensorOf(noise, shape), 0, noisyAt(s, 0)).prevSample, x0, 1e-5, "set_alpha_to_one");
    const s0 = new DDIMScheduler({ set_alpha_to_one: false });
    s0.setTimesteps(10);
    const a0 = acp[0]!;
    assertClose(s0.step(tensorOf(noise, shape), 0, noisyAt(s0, 0)).prevSample, Array.from(x0, (v, i) => Math.sqrt(a0) * v + Math.sqrt(1 - a0) * noise[i]!), 1e-5);
  });

  test("ddim-quad skip: the previous timestep is the next entry of the list", () => {
    const q = new DDIMScheduler();
    q.setTimesteps(10, { skip: "ddim-quad" });
    assert.deepEqual(q.timesteps, [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]);
    assert.equal(q.previousTimestep(800), 632);
    assert.equal(q.previousTimestep(9), 0);
    assert.equal(q.previousTimestep(0), -1);
    const ap = acp[632]!;
    assertClose(q.step(tensorOf(noise, shape), 800, noisyAt(q, 800)).prevSample, Array.from(x0, (v, i) => Math.sqrt(ap) * v + Math.sqrt(1 - ap) * noise[i]!), 1e-4);
  });

  test("diffusers' spacings step from t to t - T // n, as diffusers does, whatever the spacing", () => {
    const lin = new DDIMScheduler({ timestep_spacing: "linspace" });
    lin.setTimesteps(10, { skip: "config" });
    assert.deepEqual(lin.timesteps, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    assert.equal(lin.previousTimestep(999), 899);
    assert.equal(lin.previousTimestep(111), 11);
    const off = new DDIMScheduler({ steps_offset: 1 });
    off.setTimesteps(10, { skip: "leading" });
    assert.deepEqual([off.timesteps[0], off.previousTimestep(901), off.previousTimestep(1)], [901, 801, -99]);
  });

  test("eta 1 is DDPM's posterior step (fixed_small), given the same noise", () => {
    const ddim = new DDIMScheduler({ clip_sample: false });
    const ddpm = new DDPMScheduler({ clip_sample: false });
    ddim.setTimesteps(10, { skip: "leading" });
    ddpm.setTimesteps(10);
    const xt = tensorOf(normals(n, 14), shape);
    const eps = tensorOf(normals(n, 15), shape);
    const a = ddim.step(eps, 700, xt, { eta: 1, varianceNoise: tensorOf(z, shape) }).prevSample;
    const b = ddpm.step(eps, 700, xt, { varianceNoise: tensorOf(z, shape) }).prevSample;
    assertClose(a, b, 1e-5);
    const c = ddim.step(eps, 700, xt).prevSample;
    assert.ok(torch.sub(a, c).abs().max().item() > 0.05, "eta 1 differs from eta 0");
  });

  /**
   * The DDIM loop in float64 with clip_sample, for the stand-in model eps(x, t) = c x; each step
   * goes to t - 1000 // n, or with `toNextEntry` to the next entry of the list.
   */
  function referenceLoop(timesteps: number[], toNextEntry: boolean, init: Float64Array, c: number, eta: number, zs: Float64Array[]): number[] {
    let x = Array.from(init);
    timesteps.forEach((t, k) => {
      const a = acp[t]!;
      const prevT = toNextEntry ? (timesteps[k + 1] ?? -1) : t - Math.floor(1000 / timesteps.length);
      const ap = prevT >= 0 ? acp[prevT]! : 1;
      const sigma = eta * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
      x = x.map((xi, i) => {
        const eps = c * xi;
        const x0Hat = Math.max(-1, Math.min(1, (xi - Math.sqrt(1 - a) * eps) / Math.sqrt(a)));
        return Math.sqrt(ap) * x0Hat + Math.sqrt(1 - ap - sigma * sigma) * eps + sigma * (zs[k]?.[i] ?? 0);
      });
    });
    return x;
  }

  function loop(sched: DDIMScheduler, init: torch.Tensor, c: number, eta = 0, zs: Float64Array[] = []): torch.Tensor {
    let x = init;
    sched.timesteps.forEach((t, k) => {
      const next = torch.tidy(() => sched.step(x.mul(c), t, x, { eta, varianceNoise: zs[k] && tensorOf(zs[k], shape) }).prevSample);
      if (x !== init) x.dispose();
      x = next;
    });
    return x;
  }

  for (const skip of ["uniform", "quad", "leading", "trailing", "ddim-quad"] as SkipType[]) {
    test(`the full ${skip} loop with a stand-in model equals the float64 DDIM loop`, () => {
      const d = new DDIMScheduler();
      d.setTimesteps(10, { skip });
      const init = normals(n, 16);
      const out = loop(d, tensorOf(init, shape), 0.3);
      const toNextEntry = skip === "ddim-quad";
      assertClose(out, referenceLoop(d.timesteps, toNextEntry, init, 0.3, 0, []), 1e-4);
      // eta 0 is deterministic whatever the generator does in between
      torch.randn([100]);
      assert.ok(torch.equal(out, loop(d, tensorOf(init, shape), 0.3)));
      // and eta > 0 follows the same formula with sigma_t z added
      const zs = Array.from({ length: 10 }, (_, k) => normals(n, 100 + k));
      assertClose(loop(d, tensorOf(init, shape), 0.3, 0.5, zs), referenceLoop(d.timesteps, toNextEntry, init, 0.3, 0.5, zs), 1e-4, "eta 0.5");
    });
  }

  test("eta > 0 without given noise draws it from torch.randn (seeded)", () => {
    const xt = tensorOf(normals(n, 17), shape);
    const eps = tensorOf(normals(n, 18), shape);
    torch.manualSeed(3);
    const a = s.step(eps, 500, xt, { eta: 1 }).prevSample;
    torch.manualSeed(3);
    const b = s.step(eps, 500, xt, { eta: 1 }).prevSample;
    torch.manualSeed(4);
    const c = s.step(eps, 500, xt, { eta: 1 }).prevSample;
    assert.ok(torch.equal(a, b));
    assert.ok(!torch.equal(a, c));
  });
});
