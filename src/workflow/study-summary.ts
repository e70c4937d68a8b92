// study.json: the study's stage files gathered into per-seed values, means with 95% bootstrap
// intervals over the seeds, the paired differences Diff-Pruning minus each baseline, and the
// sweeps. Built from whatever the folder holds, so a study still running can be summarised; a
// figure over the seeds uses the seeds that have it (listed beside it).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SCRATCH } from "./run-folder.js";
import { perImageDifference, summarize, differences, type Interval, type Summary } from "./study-stats.js";
import { budgetSteps, type FinetunedResult, type FloorResult, type PrefinetuneResult, type PretrainedResult, type StudyOptions, type StudyPaths, type SweepPoint } from "./study-folder.js";

/** A summary over seeds, naming the seeds whose values it holds. */
export type SeedSummary = Summary & { seeds: number[] };

/** The paired reference: every difference is Diff-Pruning minus another method. */
export const REFERENCE_METHOD = "diff-pruning";

export interface StudyResult {
  options: StudyOptions;
  sampler: { scheduler: "ddim"; eta: 0; steps: number; skip: string; num_samples: number; consistency_samples: number };
  /** The held-out loss's timestep bands [lo, hi). */
  bands: [number, number][];
  budgets: { budget: number; steps: number }[];
  pretrained: PretrainedResult | null;
  floor: FloorResult | null;
  /** Per seed and method, the measured values (per-image SSIM left in the stage files). */
  seeds: { seed: number; methods: Record<string, { prefinetune: Omit<PrefinetuneResult, "ssim_per_image"> | null; finetuned: Record<string, Omit<FinetunedResult, "ssim_per_image"> | null> }> }[];
  /** Means and intervals over the seeds, per method. */
  prefinetune: Record<string, { ssim: SeedSummary; macs: SeedSummary; params: SeedSummary; t_prime: SeedSummary | null; band_losses: SeedSummary[] }>;
  finetuned: Record<string, Record<string, { ssim: SeedSummary; fid: SeedSummary | null; kid: SeedSummary | null }>>;
  /** Diff-Pruning minus each baseline, per seed (same seed, same noise). */
  paired: {
    reference: string;
    /** SSIM, and the held-out loss (its mean over the bands, and per band; < 0: Diff-Pruning's is lower). */
    prefinetune: Record<string, { ssim: SeedSummary; ssim_per_image: PerSeedInterval[]; loss: SeedSummary | null; band_losses: (SeedSummary | null)[] }>;
    finetuned: Record<string, Record<string, { ssim: SeedSummary; ssim_per_image: PerSeedInterval[]; fid: SeedSummary | null; kid: SeedSummary | null }>>;
  } | null;
  sweeps: {
    thr: { thr: number; ssim: SeedSummary; t_prime: SeedSummary }[];
    ratio: Record<string, { ratio: number; ssim: SeedSummary; macs: SeedSummary; params: SeedSummary }[]>;
  };
}

/** The per-image paired SSIM difference within one seed. */
export type PerSeedInterval = Interval & { seed: number };

const readIf = <T>(file: string): T | null => (existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as T) : null);

/** A summary of `get` over the seeds where it is a number; null when no seed has it. */
function overSeeds(seeds: number[], get: (seed: number) => number | null | undefined): SeedSummary | null {
  const have = seeds.flatMap((s) => {
    const v = get(s);
    return typeof v === "number" && Number.isFinite(v) ? [[s, v] as const] : [];
  });
  if (have.length === 0) return null;
  return { ...summarize(have.map(([, v]) => v)), seeds: have.map(([s]) => s) };
}

/** A summary that a complete stage always has (the stages that make it write every field). */
const required = (s: SeedSummary | null, what: string): SeedSummary => {
  if (!s) throw new Error(`study summary: no seed has ${what}`);
  return s;
};

/** The per-seed per-image paired differences of `a` minus `b`, where both are there. */
function perImage(seeds: number[], a: (s: number) => number[] | null, b: (s: number) => number[] | null): PerSeedInterval[] {
  return seeds.flatMap((seed) => {
    const [x, y] = [a(seed), b(seed)];
    return x && y ? [{ seed, ...perImageDifference(x, y, seed) }] : [];
  });
}

const meanOf = (xs: number[] | undefined): number | null => (xs && xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** The paired difference of `get` between two methods over the seeds that have both. */
function paired(seeds: number[], get: (seed: number, method: string) => number | null | undefined, a: string, b: string): SeedSummary | null {
  const both = seeds.filter((s) => typeof get(s, a) === "number" && typeof get(s, b) === "number");
  if (both.length === 0) return null;
  const d = differences(both.map((s) => get(s, a)!), both.map((s) => get(s, b)!));
  return { ...summarize(d), seeds: both };
}

export function assembleStudy(o: StudyOptions, paths: StudyPaths): StudyResult {
  const all = o.scratch ? [...o.methods, SCRATCH] : o.methods;
  const budgets = [...o.budgets].sort((x, y) => x - y);
  const pretrained = readIf<PretrainedResult>(paths.pretrainedMetrics);
  const pre = new Map<string, PrefinetuneResult | null>();
  const post = new Map<string, FinetunedResult | null>();
  const key = (...parts: (string | number)[]) => parts.join("|");
  for (const s of o.seeds)
    for (const m of all) {
      pre.set(key(s, m), m === SCRATCH ? null : readIf<PrefinetuneResult>(paths.prefinetune(s, m)));
      for (const b of budgets) post.set(key(s, m, b), readIf<FinetunedResult>(join(paths.budget(s, m, b), "metrics.json")));
    }
  const preOf = (s: number, m: string) => pre.get(key(s, m)) ?? null;
  const postOf = (s: number, m: string, b: number) => post.get(key(s, m, b)) ?? null;
  const strip = <T extends { ssim_per_image: number[] }>(r: T | null): Omit<T, "ssim_per_image"> | null => {
    if (!r) return null;
    const { ssim_per_image: _, ...rest } = r;
    return rest;
  };

  const prefinetune: StudyResult["prefinetune"] = {};
  for (const m of o.methods) {
    if (!o.seeds.some((s) => preOf(s, m))) continue;
    const bands = preOf(o.seeds.find((s) => preOf(s, m))!, m)!.band_losses.length;
    prefinetune[m] = {
      ssim: required(overSeeds(o.seeds, (s) => preOf(s, m)?.ssim), `${m}'s SSIM`),
      macs: required(overSeeds(o.seeds, (s) => preOf(s, m)?.macs), `${m}'s MACs`),
      params: required(overSeeds(o.seeds, (s) => preOf(s, m)?.params), `${m}'s params`),
      t_prime: overSeeds(o.seeds, (s) => preOf(s, m)?.t_prime),
      band_losses: Array.from({ length: bands }, (_, i) => required(overSeeds(o.seeds, (s) => preOf(s, m)?.band_losses[i]), `${m}'s band losses`)),
    };
  }
  const finetuned: StudyResult["finetuned"] = {};
  for (const b of budgets) {
    const row: StudyResult["finetuned"][string] = {};
    for (const m of all) {
      const ssim = overSeeds(o.seeds, (s) => postOf(s, m, b)?.ssim);
      if (ssim) row[m] = { ssim, fid: overSeeds(o.seeds, (s) => postOf(s, m, b)?.fid), kid: overSeeds(o.seeds, (s) => postOf(s, m, b)?.kid) };
    }
    finetuned[String(b)] = row;
  }

  let pairs: StudyResult["paired"] = null;
  if (o.methods.includes(REFERENCE_METHOD)) {
    const ref = REFERENCE_METHOD;
    const baselines = all.filter((m) => m !== ref);
    pairs = { reference: ref, prefinetune: {}, finetuned: {} };
    for (const m of baselines.filter((x) => x !== SCRATCH)) {
      const ssim = paired(o.seeds, (s, x) => preOf(s, x)?.ssim, ref, m);
      if (!ssim) continue;
      const bands = preOf(o.seeds.find((s) => preOf(s, ref) && preOf(s, m))!, ref)!.band_losses.length;
      pairs.prefinetune[m] = {
        ssim,
        ssim_per_image: perImage(o.seeds, (s) => preOf(s, ref)?.ssim_per_image ?? null, (s) => preOf(s, m)?.ssim_per_image ?? null),
        loss: paired(o.seeds, (s, x) => meanOf(preOf(s, x)?.band_losses), ref, m),
        band_losses: Array.from({ length: bands }, (_, b) => paired(o.seeds, (s, x) => preOf(s, x)?.band_losses[b], ref, m)),
      };
    }
    for (const b of budgets) {
      const row: NonNullable<StudyResult["paired"]>["finetuned"][string] = {};
      for (const m of baselines) {
        const ssim = paired(o.seeds, (s, x) => postOf(s, x, b)?.ssim, ref, m);
        if (!ssim) continue;
        row[m] = {
          ssim,
          ssim_per_image: perImage(o.seeds, (s) => postOf(s, ref, b)?.ssim_per_image ?? null, (s) => postOf(s, m, b)?.ssim_per_image ?? null),
          fid: paired(o.seeds, (s, x) => postOf(s, x, b)?.fid, ref, m),
          kid: paired(o.seeds, (s, x) => postOf(s, x, b)?.kid, ref, m),
        };
      }
      pairs.finetuned[String(b)] = row;
    }
  }

  // The sweeps' points at the main ratio and threshold are the main prunes.
  const thrPoint = (s: number, thr: number): Pick<SweepPoint, "ssim" | "t_prime"> | null => (thr === o.thr ? preOf(s, REFERENCE_METHOD) : readIf<SweepPoint>(paths.thrPoint(s, thr)));
  const ratioPoint = (s: number, m: string, r: number): Pick<SweepPoint, "ssim" | "macs" | "params"> | null => (r === o.ratio ? preOf(s, m) : readIf<SweepPoint>(paths.ratioPoint(s, m, r)));
  const thr = !o.methods.includes(REFERENCE_METHOD)
    ? []
    : [...o.thrSweep]
        .sort((x, y) => x - y)
        .flatMap((t) => {
          const ssim = overSeeds(o.seeds, (s) => thrPoint(s, t)?.ssim);
          const tp = overSeeds(o.seeds, (s) => thrPoint(s, t)?.t_prime);
          return ssim && tp ? [{ thr: t, ssim, t_prime: tp }] : [];
        });
  const ratio: StudyResult["sweeps"]["ratio"] = {};
  for (const m of o.methods)
    ratio[m] = [...o.ratioSweep]
      .sort((x, y) => x - y)
      .flatMap((r) => {
        const ssim = overSeeds(o.seeds, (s) => ratioPoint(s, m, r)?.ssim);
        const macs = overSeeds(o.seeds, (s) => ratioPoint(s, m, r)?.macs);
        const params = overSeeds(o.seeds, (s) => ratioPoint(s, m, r)?.params);
        return ssim && macs && params ? [{ ratio: r, ssim, macs, params }] : [];
      });

  return {
    options: o,
    sampler: { scheduler: "ddim", eta: 0, steps: o.samplingSteps, skip: o.skip, num_samples: o.numSamples, consistency_samples: o.consistencySamples },
    bands: pretrained?.band_edges ?? [],
    budgets: budgets.map((b) => ({ budget: b, steps: budgetSteps(o, b) })),
    pretrained,
    floor: readIf<FloorResult>(paths.floor),
    seeds: o.seeds.map((seed) => ({
      seed,
      methods: Object.fromEntries(all.map((m) => [m, { prefinetune: strip(preOf(seed, m)), finetuned: Object.fromEntries(budgets.map((b) => [String(b), strip(postOf(seed, m, b))])) }])),
    })),
    prefinetune,
    finetuned,
    paired: pairs,
    sweeps: { thr, ratio },
  };
}
