// Option parsers for the CLI: each rejects bad input with a message saying what is expected
// (commander puts the flag in front: "option '--ratio <r>' argument '' is invalid: ...").
import { InvalidArgumentError, type Command } from "commander";
import { OptionError } from "../io/index.js";

/** A plain decimal number: no empty string (Number("") is 0), hex, NaN, Infinity or spaces. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

const shown = (value: string): string => (value.trim() === "" ? "an empty value" : JSON.stringify(value));

/** `value` as a finite number, or an error saying `expected` (and what was given). */
function parseNumber(value: string, expected: string): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected ${expected}, got ${shown(value)}`);
  return n;
}

function parseWith(expected: string, ok: (n: number) => boolean): (value: string) => number {
  return (value) => {
    const n = parseNumber(value, expected);
    if (!ok(n)) throw new InvalidArgumentError(`expected ${expected}, got ${value}`);
    return n;
  };
}

export const positiveInt = parseWith("a positive integer", (n) => Number.isSafeInteger(n) && n > 0);

export const nonNegativeInt = parseWith("a non-negative integer", (n) => Number.isSafeInteger(n) && n >= 0);

export const positiveNumber = parseWith("a positive number", (n) => n > 0);

export const nonNegativeNumber = parseWith("a number >= 0", (n) => n >= 0);

/**
 * A learning rate: positive and at most `max`. Larger ones make Adam's steps as large as the
 * weights (1e30 turns every weight into NaN in one step).
 */
export function learningRate(max = 1): (value: string) => number {
  return parseWith(`a learning rate in (0, ${max}]`, (n) => n > 0 && n <= max);
}

/** A number in [0, 1) (dropout) or [0, 1] when `closed`. */
export function fraction(closed = false): (value: string) => number {
  return parseWith(`a number in [0, 1${closed ? "]" : ")"}`, (n) => n >= 0 && (closed ? n <= 1 : n < 1));
}

/** A number in (0, 1]: a share that must leave something (--max-ratio 0 would let no group lose a channel). */
export const positiveFraction = parseWith("a number in (0, 1]", (n) => n > 0 && n <= 1);

export function oneOf<T extends string>(...choices: T[]): (value: string) => T {
  return (value) => {
    if (!(choices as string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(", ")}, got ${shown(value)}`);
    return value as T;
  };
}


/** --skip's help, shared by sample, eval and demo. */
export const SKIP_HELP =
  "DDIM timesteps: uniform or quad = the paper's sampler (Diff-Pruning's ddpm_sample.py: round(i(T-1)/(n-1)) or " +
  "round(i^2(T-1)/(n-1)^2), each step to t - T//n; needs 2+ steps); leading, linspace, trailing = diffusers' " +
  "timestep_spacing; config = the model folder's timestep_spacing; ddim-quad = the DDIM codebase's " +
  "int(linspace(0, sqrt(0.8T), n)^2), each step to the next entry";

/** KID's subset options (study, convergence). */
export const addKidOptions = (cmd: Command): Command =>
  cmd.option("--kid-subsets <n>", "KID's subsets", positiveInt, 100).option("--kid-subset-size <n>", "KID's subset size (at most the samples)", positiveInt, 1000);

/** --dtype of sample and eval: the precision the UNet runs in. */
export type InferenceDType = "float32" | "bf16";
export const DTYPE_HELP = "the UNet's precision: float32, or bf16 (bfloat16 weights and activations through oneDNN; the scheduler's arithmetic and the autoencoder stay float32)";
export const inferenceDType = oneOf<InferenceDType>("float32", "bf16");

/** Casts a loaded UNet to --dtype. */
export function applyDType(model: { to(d: "bfloat16"): unknown }, dtype: InferenceDType): void {
  if (dtype === "bf16") model.to("bfloat16");
}

/** Library option names whose flag is not their kebab-case form. */
const FLAG_ALIASES: Record<string, string> = { ignoredLayers: "--ignore", file: "--init-noise" };

/** What addOptimizationOptions parses. */
export interface OptimizationArgs {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  lrSchedule: "constant" | "cosine";
}

/** The trainers' options from those flags. */
export const optimizationOf = (a: OptimizationArgs) => ({ steps: a.steps, batchSize: a.batchSize, lr: a.lr, warmupSteps: a.warmup, lrSchedule: a.lrSchedule });

/** A trainer's optimisation flags, with its defaults: --steps, --batch-size, --lr, --warmup, --lr-schedule. */
export function addOptimizationOptions(
  cmd: Command,
  d: { steps: number; batchSize: number; lr: number; warmupSteps: number; lrSchedule: "constant" | "cosine" },
  batchHelp = "images per step",
): Command {
  return cmd
    .option("--steps <n>", "optimisation steps", positiveInt, d.steps)
    .option("--batch-size <n>", batchHelp, positiveInt, d.batchSize)
    .option("--lr <x>", "peak learning rate, in (0, 1]", learningRate(), d.lr)
    .option("--warmup <n>", "linear warm-up steps", nonNegativeInt, d.warmupSteps)
    .option("--lr-schedule <s>", "after warm-up: constant or cosine", oneOf("constant", "cosine"), d.lrSchedule);
}

/** The flag of a library option (roundTo -> --round-to); a name that is already a flag stays. */
export function flagOf(option: string): string {
  if (option.startsWith("-")) return option;
  return FLAG_ALIASES[option] ?? `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** An error's message as the CLI shows it: library option names become the flags that set them. */
export const cliMessage = (err: unknown): string => (err instanceof OptionError ? err.describe(flagOf) : err instanceof Error ? err.message : String(err));
