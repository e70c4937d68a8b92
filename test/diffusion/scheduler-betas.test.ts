// Beta schedules and timestep lists against their closed forms.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DDIMScheduler, DDPMScheduler, ddimQuadTimesteps, spacedTimesteps } from "../../src/diffusion/schedulers/index.js";
import { assertClose } from "../helpers/assert.js";
import { alphaBar } from "./scheduler-helpers.js";

const T = 1000;

describe("beta schedules", () => {
  test("linear: evenly spaced from beta_start to beta_end; alphas_cumprod is the running product", () => {
    const s = new DDPMScheduler({ beta_start: 1e-4, beta_end: 0.02 });
    const expected = Array.from({ length: T }, (_, i) => 1e-4 + (i * (0.02 - 1e-4)) / (T - 1));
    assertClose(s.betas, expected, 1e-8, "betas");
    assert.equal(s.betas.dtype, "float32");
    let prod = 1;
    const acp = expected.map((b) => (prod *= 1 - b));
    assertClose(s.alphasCumprod, acp, 1e-6, "alphas_cumprod");
    assertClose(s.alphas, expected.map((b) => 1 - b), 1e-7, "alphas");
  });

  test("scaled_linear: linspace(sqrt(b0), sqrt(b1), T)^2", () => {
    const [b0, b1] = [0.00085, 0.012];
    const s = new DDPMScheduler({ beta_schedule: "scaled_linear", beta_start: b0, beta_end: b1 });
    const r0 = Math.sqrt(b0);
    const r1 = Math.sqrt(b1);
    const expected = Array.from({ length: T }, (_, i) => (r0 + (i * (r1 - r0)) / (T - 1)) ** 2);
    assertClose(s.betas, expected, 1e-8, "betas");
    // Not the linear schedule: the midpoint is well below (b0 + b1) / 2.
    assert.ok(s.betas.toArray()[500]! < (b0 + b1) / 2 - 5e-4);
  });

  test("squaredcos_cap_v2: 1 - alpha_bar(t+1)/alpha_bar(t), capped at 0.999", () => {
    const s = new DDIMScheduler({ beta_schedule: "squaredcos_cap_v2" });
    const betas = s.betas.toArray();
    assert.ok(Math.abs(betas[0]! - (1 - alphaBar(1 / T) / alphaBar(0))) < 1e-9);
    assert.equal(betas[T - 1], Math.fround(0.999), "the last beta is capped");
    // Uncapped, the product telescopes: alphas_cumprod[t] = alpha_bar((t + 1) / T) / alpha_bar(0).
    const acp = s.alphasCumprod.toArray();
    for (const t of [0, 100, 500, 900]) assert.ok(Math.abs(acp[t]! - alphaBar((t + 1) / T) / alphaBar(0)) < 1e-5, `acp[${t}]`);
  });

  test("trained_betas are used as given", () => {
    const trained = [0.1, 0.2, 0.5];
    const s = new DDPMScheduler({ num_train_timesteps: 3, trained_betas: trained, beta_schedule: "scaled_linear" });
    assertClose(s.betas, trained, 1e-7);
    assertClose(s.alphasCumprod, [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5], 1e-6);
  });
});

describe("timesteps", () => {
  test("leading spacing: multiples of T // n, descending, plus steps_offset", () => {
    assert.deepEqual(spacedTimesteps(T, 10, "leading"), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    assert.deepEqual(spacedTimesteps(T, 10, "leading", 1), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    assert.deepEqual(spacedTimesteps(T, 3, "leading"), [666, 333, 0]);
    const s = new DDPMScheduler();
    assert.equal(s.timesteps.length, T);
    assert.equal(s.timesteps[0], T - 1);
    s.setTimesteps(4);
    assert.deepEqual(s.timesteps, [750, 500, 250, 0]);
  });

  test("linspace and trailing spacing equal numpy's lists", () => {
    // np.linspace(0, 999, 10).round()[::-1]; np.round(np.arange(1000, 0, -1000 / 7)) - 1
    assert.deepEqual(spacedTimesteps(T, 10, "linspace"), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    assert.deepEqual(spacedTimesteps(T, 7, "trailing"), [999, 856, 713, 570, 428, 285, 142]);
    // 499.5 rounds to even, as numpy does.
    assert.deepEqual(spacedTimesteps(T, 3, "linspace"), [999, 500, 0]);
  });

  test("ddim-quad skip: int(linspace(0, sqrt(0.8 T), n)^2), descending", () => {
    const formula = (n: number): number[] =>
      Array.from({ length: n }, (_, i) => {
        const x = i === n - 1 ? Math.sqrt(0.8 * T) : i * (Math.sqrt(0.8 * T) / (n - 1));
        return Math.floor(x * x);
      }).reverse();
    // From numpy: [int(s) for s in np.linspace(0, np.sqrt(800), 10) ** 2].
    const numpy10 = [0, 9, 39, 88, 158, 246, 355, 483, 632, 800].reverse();
    assert.deepEqual(ddimQuadTimesteps(T, 10), numpy10);
    assert.deepEqual(ddimQuadTimesteps(T, 10), formula(10));
    assert.deepEqual(ddimQuadTimesteps(T, 20), formula(20));
    // n = 100 repeats 0 (four times) and 2 (twice); the repeats are dropped.
    const q100 = ddimQuadTimesteps(T, 100);
    assert.equal(q100.length, 96);
    assert.deepEqual(q100, [...new Set(formula(100))]);
    assert.deepEqual(q100.slice(-4), [3, 2, 1, 0]);
  });

  test("bad step counts are RangeErrors", () => {
    assert.throws(() => spacedTimesteps(T, 0, "leading"), RangeError);
    assert.throws(() => spacedTimesteps(T, T + 1, "leading"), /1\.\.1000/);
    assert.throws(() => ddimQuadTimesteps(T, 2.5), RangeError);
  });
});
