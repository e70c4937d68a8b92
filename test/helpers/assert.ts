// Numeric assertions for tests.
import assert from "node:assert/strict";
import { Tensor } from "../../src/torch/index.js";

const valuesOf = (v: Tensor | ArrayLike<number>): number[] => (v instanceof Tensor ? v.toArray() : Array.from(v));

/** Every element within `tol` of the expected value (absolute), and the same element count. */
export function assertClose(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, tol = 1e-6, what = "value"): void {
  const a = valuesOf(actual);
  const e = valuesOf(expected);
  assert.equal(a.length, e.length, `${what}: ${a.length} elements, expected ${e.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  assert.ok(worst <= tol, `${what}: element ${at} is ${a[at]}, expected ${e[at]} (|diff| ${worst} > ${tol})`);
}

/** Largest absolute difference between two tensors or arrays. */
export function maxAbsDiff(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>): number {
  const x = valuesOf(a);
  const y = valuesOf(b);
  assert.equal(x.length, y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}
