// The study's statistics: a value per seed summarised by its mean and 95% percentile-bootstrap
// interval over the seeds, and paired differences (Diff-Pruning minus a baseline, same seed, same
// noise) summarised the same way. Paired differences remove what the seeds share (the noise, the
// calibration images), so they can tell methods apart that overlapping marginal intervals cannot.
import { bootstrapMean } from "../metrics/index.js";

/** Values (per seed, or per image), their mean and its 95% bootstrap interval. */
export interface Summary {
  values: number[];
  mean: number;
  ci95: [number, number];
}

/** The interval of a mean without the values (per-image summaries, which would be large). */
export type Interval = Omit<Summary, "values"> & { n: number };

/** Resamples of each bootstrap: 10,000, as bootstrapMean's default. */
const RESAMPLES = 10_000;

export function summarize(values: number[], seed = 0): Summary {
  const { mean, ci } = bootstrapMean(values, { resamples: RESAMPLES, seed });
  return { values, mean, ci95: ci };
}

/** a - b element by element; the two lists must pair up (same seeds, or same images). */
export function differences(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`paired difference: ${a.length} values against ${b.length}; pair the same seeds (or images)`);
  return a.map((v, i) => v - b[i]!);
}

/** The paired difference a - b per seed, its mean and 95% interval. */
export const pairedDifference = (a: readonly number[], b: readonly number[], seed = 0): Summary => summarize(differences(a, b), seed);

/** The paired per-image difference within one seed: its mean and 95% interval over the images. */
export function perImageDifference(a: readonly number[], b: readonly number[], seed = 0): Interval {
  const d = differences(a, b);
  const { mean, ci } = bootstrapMean(d, { resamples: RESAMPLES, seed });
  return { mean, ci95: ci, n: d.length };
}

/** Whether an interval excludes zero (the difference is resolved at 95%). */
export const excludesZero = (ci: [number, number]): boolean => ci[0] > 0 || ci[1] < 0;
