// Option parsers for the CLI: each rejects bad input with a message saying what is expected.
import { InvalidArgumentError } from "commander";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError("expected a non-negative integer");
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a positive number");
  return n;
}

/** A number in [0, 1) (dropout) or [0, 1] when `closed`. */
export function fraction(closed = false): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || (closed ? n > 1 : n >= 1)) throw new InvalidArgumentError(`expected a number in [0, 1${closed ? "]" : ")"}`);
    return n;
  };
}

export function oneOf<T extends string>(...choices: T[]): (value: string) => T {
  return (value) => {
    if (!(choices as string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(", ")}`);
    return value as T;
  };
}

/** --skip's help, shared by sample, eval and demo. */
export const SKIP_HELP =
  "DDIM timesteps: uniform or quad = the paper's sampler (Diff-Pruning's ddpm_sample.py: round(i(T-1)/(n-1)) or " +
  "round(i^2(T-1)/(n-1)^2), each step to t - T//n; needs 2+ steps); leading, linspace, trailing = diffusers' " +
  "timestep_spacing; config = the model folder's timestep_spacing; ddim-quad = the DDIM codebase's " +
  "int(linspace(0, sqrt(0.8T), n)^2), each step to the next entry";
