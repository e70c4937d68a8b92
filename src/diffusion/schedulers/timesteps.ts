// Which training timesteps a sampler visits, in sampling order (descending). The arithmetic is
// numpy's (linspace, arange, round half to even), so the lists equal the Python ones.
import type { TimestepSpacing } from "./config.js";

/** numpy.linspace(start, stop, num): i * step + start, with the last element exactly `stop`. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** numpy.round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkSteps(numInferenceSteps: number, numTrainTimesteps: number): void {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > numTrainTimesteps)
    throw new RangeError(`setTimesteps(): num_inference_steps must be an integer in 1..${numTrainTimesteps} (num_train_timesteps), got ${numInferenceSteps}`);
}

/**
 * diffusers' spacings. "leading" (the only one in 0.17): multiples of T // n plus steps_offset;
 * "linspace": round(linspace(0, T - 1, n)); "trailing": round(arange(T, 0, -T / n)) - 1.
 */
export function spacedTimesteps(numTrainTimesteps: number, numInferenceSteps: number, spacing: TimestepSpacing, stepsOffset = 0): number[] {
  checkSteps(numInferenceSteps, numTrainTimesteps);
  const T = numTrainTimesteps;
  const n = numInferenceSteps;
  switch (spacing) {
    case "leading": {
      const stepRatio = Math.floor(T / n);
      return Array.from({ length: n }, (_, i) => (n - 1 - i) * stepRatio + stepsOffset);
    }
    case "linspace":
      return numpyLinspace(0, T - 1, n).map(roundHalfEven).reverse();
    case "trailing": {
      const stepRatio = T / n;
      const length = Math.ceil(T / stepRatio); // numpy.arange's length
      return Array.from({ length }, (_, i) => roundHalfEven(T - i * stepRatio) - 1);
    }
  }
}

/**
 * The paper's sampler: the DDIMScheduler of Diff-Pruning's copy of diffusers 0.17, which
 * `ddpm_sample.py` calls with skip_type "uniform" (its default) or "quad":
 *   uniform: round(arange(n) * ((T - 1) / (n - 1)))
 *   quad:    round(arange(n)**2 * ((T - 1) / (n - 1)**2))
 * in float64, numpy's half-to-even rounding, descending, plus steps_offset. Both divide by n - 1,
 * so one step is a ZeroDivisionError there and a RangeError here. step() still moves from t to
 * t - T // n, not to the next entry (see DDIMScheduler).
 */
export function paperTimesteps(numTrainTimesteps: number, numInferenceSteps: number, skip: "uniform" | "quad", stepsOffset = 0): number[] {
  checkSteps(numInferenceSteps, numTrainTimesteps);
  const n = numInferenceSteps;
  if (n < 2)
    throw new RangeError(`setTimesteps(): skip "${skip}" needs at least 2 inference steps (the paper's sampler divides by num_inference_steps - 1); for one step use skip "leading"`);
  const ratio = skip === "uniform" ? (numTrainTimesteps - 1) / (n - 1) : (numTrainTimesteps - 1) / (n - 1) ** 2;
  return Array.from({ length: n }, (_, k) => {
    const i = n - 1 - k;
    return roundHalfEven((skip === "uniform" ? i : i * i) * ratio) + stepsOffset;
  });
}

/**
 * The DDIM codebase's "quad" skip (ermongroup/ddim, runners/diffusion.py; Diff-Pruning's
 * ddpm_exp, behind the paper's CIFAR-10 table): int(linspace(0, sqrt(0.8 T), n)^2), descending,
 * each entry stepping to the next. When n > sqrt(0.8 T) + 1 the small timesteps repeat; the
 * codebase then steps from t to t, which changes nothing (sigma is 0 and x0 is re-noised to the
 * same x_t), so we drop the repeats: the same samples with fewer model calls.
 */
export function ddimQuadTimesteps(numTrainTimesteps: number, numInferenceSteps: number): number[] {
  checkSteps(numInferenceSteps, numTrainTimesteps);
  const seq = numpyLinspace(0, Math.sqrt(numTrainTimesteps * 0.8), numInferenceSteps).map((s) => Math.trunc(s * s));
  return [...new Set(seq)].reverse();
}

/** Each timestep's successor in the sampling order; the last one steps to -1 (the clean image). */
export function previousTimesteps(timesteps: readonly number[]): Map<number, number> {
  return new Map(timesteps.map((t, i) => [t, timesteps[i + 1] ?? -1]));
}
