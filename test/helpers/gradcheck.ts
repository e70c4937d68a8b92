// Finite-difference gradient checking in float64: the analytic gradient that autograd gives
// through our API against central differences of the same function.
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { mulberry32 } from "./random.js";

/** A function of float64 tensors; its output may have any shape. */
export type Fn = (inputs: Tensor[]) => Tensor;

/** An input as plain data, so perturbed copies can be built without touching any leaf. */
export interface Arg {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export interface GradcheckOptions {
  /** Step of the central difference. */
  eps?: number;
  /** Pass when |analytic - numeric| <= tol * (1 + |numeric|) at every checked element. */
  tol?: number;
  /** Elements checked per input, drawn at random (all when the input is smaller). */
  maxElements?: number;
  /** Seeds the projection and the choice of elements. */
  seed?: number;
}

export interface Comparison {
  ok: boolean;
  /** The largest |analytic - numeric| / (1 + |numeric|) over the checked elements. */
  maxErr: number;
  worst: { index: number; analytic: number; numeric: number };
  checked: number;
}

export function f64(t: Tensor): Float64Array {
  const a = t.toTypedArray();
  if (!(a instanceof Float64Array)) throw new TypeError(`expected a float64 tensor, got ${t.dtype}`);
  return a;
}

const toArg = (t: Tensor): Arg => ({ shape: [...t.shape], data: f64(t) });
const toTensor = (a: Arg, data: Float64Array = a.data): Tensor => torch.tensor(data, { shape: [...a.shape], dtype: "float64" });

/** `k` distinct indices of [0, n), in order; all of them when n <= k. */
export function sampleIndices(n: number, k: number, random: () => number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= k) return all;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (n - i));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, k).sort((a, b) => a - b);
}

/**
 * sum(fn(x) * r) for a fixed random r: a scalar in which every output element counts with its
 * own weight, so a gradient that is wrong for any one element shows (plain sum() would hide,
 * e.g., errors that cancel across a softmax row or a normalised group).
 */
export function project(fn: Fn, seed: number): (inputs: Tensor[]) => Tensor {
  let r: Float64Array | undefined;
  return (inputs) => {
    const out = fn(inputs);
    if (r === undefined) {
      const random = mulberry32(seed);
      r = Float64Array.from({ length: out.numel }, () => 2 * random() - 1);
    }
    if (r.length !== out.numel) throw new Error("the output changed size between calls");
    return out.mul(torch.tensor(r, { shape: [...out.shape], dtype: "float64" })).sum();
  };
}

/** The gradients of the scalar `f` w.r.t. every input, by backward(). */
export function analyticGrads(f: (inputs: Tensor[]) => Tensor, args: readonly Arg[]): Float64Array[] {
  return torch.tidy(() => {
    const leaves = args.map((a) => toTensor(a).requiresGrad_());
    f(leaves).backward();
    return leaves.map((l, i) => {
      const g = l.grad;
      if (g === null) throw new Error(`input ${i} got no gradient`);
      return f64(g);
    });
  });
}

/** (f(x + eps e_j) - f(x - eps e_j)) / 2 eps for input `which` at each index j. */
export function numericGrad(f: (inputs: Tensor[]) => Tensor, args: readonly Arg[], which: number, indices: readonly number[], eps: number): Float64Array {
  const at = (j: number, delta: number): number => {
    const data = Float64Array.from(args[which]!.data);
    data[j]! += delta;
    return torch.noGrad(() => torch.tidy(() => f(args.map((a, i) => (i === which ? toTensor(a, data) : toTensor(a)))).item()));
  };
  return Float64Array.from(indices, (j) => (at(j, eps) - at(j, -eps)) / (2 * eps));
}

/** Compares analytic[indices[k]] with numeric[k]. */
export function compare(analytic: Float64Array, numeric: Float64Array, indices: readonly number[], tol: number): Comparison {
  let maxErr = 0;
  let worst = { index: -1, analytic: NaN, numeric: NaN };
  indices.forEach((j, k) => {
    const a = analytic[j]!;
    const n = numeric[k]!;
    const rel = Math.abs(a - n) / (1 + Math.abs(n));
    const err = Number.isNaN(rel) ? Infinity : rel; // a NaN gradient must fail, not slip past `<=`
    if (k === 0 || err > maxErr) {
      maxErr = err;
      worst = { index: j, analytic: a, numeric: n };
    }
  });
  return { ok: maxErr <= tol, maxErr, worst, checked: indices.length };
}

export interface GradcheckResult {
  args: Arg[];
  /** The full analytic gradient of each input. */
  analytic: Float64Array[];
  /** Per input: the checked indices and their finite differences. */
  numeric: { indices: number[]; values: Float64Array }[];
  comparisons: Comparison[];
}

/** Checks d/d(inputs) of sum(fn(inputs) * r) against central differences. */
export function gradcheck(fn: Fn, inputs: readonly Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, tol = 1e-6, maxElements = 40, seed = 1 } = options;
  for (const t of inputs) if (t.dtype !== "float64") throw new TypeError(`gradcheck needs float64 inputs, got ${t.dtype}`);
  const f = project(fn, seed);
  const args = inputs.map(toArg);
  const analytic = analyticGrads(f, args);
  const random = mulberry32(seed + 1);
  const numeric = args.map((a, i) => {
    const indices = sampleIndices(a.data.length, maxElements, random);
    return { indices, values: numericGrad(f, args, i, indices, eps) };
  });
  const comparisons = numeric.map((n, i) => compare(analytic[i]!, n.values, n.indices, tol));
  return { args, analytic, numeric, comparisons };
}
