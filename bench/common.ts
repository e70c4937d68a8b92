// Timing helpers shared by the benchmarks. The machines are noisy, so figures are medians over
// several repeats, taken after warm-up calls (allocator, oneDNN primitive cache, JIT).
import { performance } from "node:perf_hooks";

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median(): no values");
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Sample {
  /** Wall seconds per call. */
  seconds: number;
  /**
   * Minor page faults per call (whole process). On these VMs a fault costs ~20 us, so buffers
   * that malloc maps and unmaps on every call can cost more than the kernel itself.
   */
  faults: number;
}

/** Runs `fn` `iters` times; returns the cost per call. */
export function timeRepeat(fn: () => void, iters: number): Sample {
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) fn();
  const seconds = (performance.now() - t0) / 1000 / iters;
  return { seconds, faults: (process.resourceUsage().minorPageFault - f0) / iters };
}

/** Prints a progress line to stderr, so stdout stays one JSON object. */
export const progress = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

/** Rounds for JSON output. */
export const round = (x: number, digits = 3): number => Number(x.toFixed(digits));
