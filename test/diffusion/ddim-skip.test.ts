// DDIM's skip types: the paper's sampler (Diff-Pruning's copy of diffusers 0.17, skip_type
// "uniform" and "quad"), diffusers' own spacings and the DDIM codebase's quad, checked against
// closed forms written out here: which timesteps each visits and where each step goes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DDIMScheduler, paperTimesteps, SKIP_TYPES, type SkipType } from "../../src/diffusion/schedulers/index.js";
import * as torch from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";
import { normals, tensorOf } from "./scheduler-helpers.js";

/**
 * numpy's round (half to even) by another route than the code's: from the fractional part. The
 * product stays float64, as numpy computes it (exact fractions would round 13 * 999 / 26 =
 * 499.5 to 500; float64 has 499.49999999999994 and numpy gives 499).
 */
function numpyRound(x: number): number {
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac !== 0.5) return frac < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The reference's lists written out: (arange(n)[**2] * ratio).round()[::-1] + steps_offset. */
function referenceList(T: number, n: number, skip: "uniform" | "quad", offset = 0): number[] {
  const ratio = skip === "uniform" ? (T - 1) / (n - 1) : (T - 1) / ((n - 1) * (n - 1));
  const out: number[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(numpyRound((skip === "uniform" ? i : i * i) * ratio) + offset);
  return out;
}

const ddim = (config = {}) => new DDIMScheduler(config);
const timestepsOf = (n: number, skip: SkipType, config = {}): number[] => {
  const s = ddim(config);
  s.setTimesteps(n, { skip });
  return s.timesteps;
};

describe("the paper's sampler: timesteps", () => {
  test('"uniform" is the default and gives round(i * 999 / (n - 1)), descending', () => {
    assert.deepEqual(timestepsOf(10, "uniform"), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    const s = ddim();
    s.setTimesteps(10);
    assert.deepEqual(s.timesteps, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    // 166.5 and 832.5 go to the even neighbour, 499.5 to 500 (numpy, not Math.round).
    assert.deepEqual(timestepsOf(7, "uniform"), [999, 832, 666, 500, 333, 166, 0]);
    // float64 as numpy: 13 * (999 / 26) is 499.49999999999994, so 499.
    assert.equal(timestepsOf(27, "uniform")[13], 499);
    for (const n of [2, 3, 27, 50, 100, 250, 999, 1000]) assert.deepEqual(timestepsOf(n, "uniform"), referenceList(1000, n, "uniform"), `n=${n}`);
    assert.deepEqual(timestepsOf(4, "uniform", { num_train_timesteps: 20 }), [19, 13, 6, 0]);
  });

  test('"quad" gives round(i^2 * 999 / (n - 1)^2), descending', () => {
    // By hand: 999 / 81 = 12.333..., times 81, 64, 49, ..., 0.
    assert.deepEqual(timestepsOf(10, "quad"), [999, 789, 604, 444, 308, 197, 111, 49, 12, 0]);
    for (const n of [2, 3, 10, 20, 50, 100, 250]) assert.deepEqual(timestepsOf(n, "quad"), referenceList(1000, n, "quad"), `n=${n}`);
    // 10 / 4 = 2.5 and 18 / 4 = 4.5 round to even.
    assert.deepEqual(timestepsOf(3, "quad", { num_train_timesteps: 11 }), [10, 2, 0]);
    assert.deepEqual(timestepsOf(3, "quad", { num_train_timesteps: 19 }), [18, 4, 0]);
    // n = 100: small timesteps repeat (0, 0, 0, 0, 1, ...) and are kept, as the reference keeps them.
    const q100 = timestepsOf(100, "quad");
    assert.equal(q100.length, 100);
    assert.deepEqual(q100.slice(-5), [2, 1, 0, 0, 0]);
  });

  test("steps_offset is added after rounding, even past T - 1 (as the reference, which then fails to index)", () => {
    assert.deepEqual(timestepsOf(10, "uniform", { steps_offset: 1 }), referenceList(1000, 10, "uniform", 1));
    assert.deepEqual(timestepsOf(10, "quad", { steps_offset: 1 }).slice(0, 3), [1000, 790, 605]);
    const s = ddim({ steps_offset: 1 });
    s.setTimesteps(10);
    assert.throws(() => s.step(torch.zeros([1, 1, 2, 2]), s.timesteps[0]!, torch.zeros([1, 1, 2, 2])), /timestep 1000 is outside 0\.\.999/);
  });

  test("one step is an error (the reference divides by n - 1); other skips take one step", () => {
    for (const skip of ["uniform", "quad"] as const) {
      assert.throws(() => ddim().setTimesteps(1, { skip }), /needs at least 2 inference steps/);
      assert.throws(() => paperTimesteps(1000, 1, skip), RangeError);
    }
    assert.deepEqual(timestepsOf(1, "leading"), [0]);
    assert.throws(() => ddim().setTimesteps(1001), /1\.\.1000/);
  });
});

describe("the paper's sampler: stepping", () => {
  const shape = [2, 1, 4, 4];
  const x0 = normals(32, 21, 0.4).map((v) => Math.max(-0.95, Math.min(0.95, v)));
  const noise = normals(32, 22);

  /** x_t built from x0 and noise, stepped with the true noise: lands on x_prev of the same x0 and noise. */
  function landsOn(s: DDIMScheduler, t: number, alphaPrev: number): void {
    const xt = s.addNoise(tensorOf(x0, shape), tensorOf(noise, shape), torch.tensor([t, t], { dtype: "int64" }));
    const { prevSample } = s.step(tensorOf(noise, shape), t, xt);
    assertClose(prevSample, Array.from(x0, (v, i) => Math.sqrt(alphaPrev) * v + Math.sqrt(1 - alphaPrev) * noise[i]!), 1e-4, `step from ${t}`);
  }

  test("uniform: from each entry to t - T // n, not to the next entry", () => {
    const s = ddim();
    const acp = s.alphasCumprod.toArray();
    s.setTimesteps(10);
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [899, 788, 677, 566, 455, 344, 233, 122, 11, -100]);
    landsOn(s, 999, acp[899]!);
    landsOn(s, 111, acp[11]!);
    landsOn(s, 0, 1); // below 0: final_alpha_cumprod, 1 with set_alpha_to_one
    s.setTimesteps(7);
    assert.equal(s.previousTimestep(999), 999 - 142);
    assert.equal(s.previousTimestep(832), 832 - 142);
  });

  test("quad: t - T // n as well, so the last steps land below 0 (final_alpha_cumprod) before the list ends", () => {
    const s = ddim();
    const acp = s.alphasCumprod.toArray();
    s.setTimesteps(10, { skip: "quad" });
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [899, 689, 504, 344, 208, 97, 11, -51, -88, -100]);
    landsOn(s, 999, acp[899]!);
    landsOn(s, 789, acp[689]!);
    landsOn(s, 49, 1);
    const s0 = ddim({ set_alpha_to_one: false });
    s0.setTimesteps(10, { skip: "quad" });
    landsOn(s0, 12, acp[0]!);
  });
});

describe("diffusers' spacings and the DDIM codebase's quad, by name", () => {
  test("leading: multiples of T // n plus steps_offset; steps to t - T // n", () => {
    assert.deepEqual(timestepsOf(10, "leading"), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    assert.deepEqual(timestepsOf(3, "leading"), [666, 333, 0]);
    assert.deepEqual(timestepsOf(10, "leading", { steps_offset: 1 }), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    const s = ddim();
    s.setTimesteps(3, { skip: "leading" });
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [333, 0, -333]);
  });

  test("linspace: round(linspace(0, T - 1, n)), no steps_offset; steps to t - T // n", () => {
    assert.deepEqual(timestepsOf(10, "linspace"), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    assert.deepEqual(timestepsOf(10, "linspace", { steps_offset: 1 }), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    assert.deepEqual(timestepsOf(7, "linspace"), [999, 832, 666, 500, 333, 166, 0]);
    assert.deepEqual(timestepsOf(1, "linspace"), [0]);
    const s = ddim();
    s.setTimesteps(7, { skip: "linspace" });
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [857, 690, 524, 358, 191, 24, -142]);
  });

  test("trailing: round(arange(T, 0, -T / n)) - 1, no steps_offset; steps to t - T // n", () => {
    assert.deepEqual(timestepsOf(10, "trailing"), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
    // 1000 / 7 = 142.857...: 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86, rounded, minus 1.
    assert.deepEqual(timestepsOf(7, "trailing"), [999, 856, 713, 570, 428, 285, 142]);
    assert.deepEqual(timestepsOf(7, "trailing", { steps_offset: 1 }), [999, 856, 713, 570, 428, 285, 142]);
    const s = ddim();
    s.setTimesteps(7, { skip: "trailing" });
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [857, 714, 571, 428, 286, 143, 0]);
  });

  test("config: the scheduler config's timestep_spacing (leading when absent)", () => {
    assert.deepEqual(timestepsOf(10, "config"), timestepsOf(10, "leading"));
    for (const spacing of ["leading", "linspace", "trailing"] as const)
      assert.deepEqual(timestepsOf(7, "config", { timestep_spacing: spacing, steps_offset: 1 }), timestepsOf(7, spacing, { steps_offset: 1 }), spacing);
  });

  test("ddim-quad: int(linspace(0, sqrt(0.8 T), n)^2), each entry stepping to the next", () => {
    const s = ddim();
    s.setTimesteps(10, { skip: "ddim-quad" });
    assert.deepEqual(s.timesteps, [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]);
    assert.deepEqual(s.timesteps.map((t) => s.previousTimestep(t)), [632, 483, 355, 246, 158, 88, 39, 9, 0, -1]);
  });

  test("every skip type is accepted, and an unknown one is an error naming them", () => {
    assert.deepEqual([...SKIP_TYPES], ["uniform", "quad", "leading", "linspace", "trailing", "config", "ddim-quad"]);
    for (const skip of SKIP_TYPES) assert.ok(timestepsOf(10, skip).length > 0, skip);
    assert.throws(() => ddim().setTimesteps(10, { skip: "cubic" as SkipType }), /unknown skip "cubic" \(use uniform \| quad/);
  });
});
