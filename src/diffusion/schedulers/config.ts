// scheduler_config.json: diffusers' keys and defaults, validation, reading from a folder.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export type SchedulerClassName = "DDPMScheduler" | "DDIMScheduler";
export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type VarianceType = "fixed_small" | "fixed_large";
export type TimestepSpacing = "leading" | "linspace" | "trailing";
export type PredictionType = "epsilon";

/**
 * The union of DDPMScheduler's and DDIMScheduler's config keys (diffusers' snake_case names, so
 * the object is the JSON file). Keys neither class knows are kept, so a config survives a round trip.
 */
export interface SchedulerConfig {
  _class_name: SchedulerClassName;
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: number[] | null;
  clip_sample: boolean;
  clip_sample_range: number;
  prediction_type: PredictionType;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  /** diffusers 0.17 always spaces "leading"; the key (from later versions) picks another. */
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  /** DDPM only. */
  variance_type: VarianceType;
  /** DDIM only: the alpha_prod before t = 0 is 1 (else alphas_cumprod[0]). */
  set_alpha_to_one: boolean;
  /** DDIM only; true is not supported. */
  rescale_betas_zero_snr: boolean;
  [key: string]: unknown;
}

export class SchedulerConfigError extends Error {
  override name = "SchedulerConfigError";
}

const common = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  clip_sample: true,
  clip_sample_range: 1.0,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  timestep_spacing: "leading",
  steps_offset: 0,
} as const;

/** Each class's own keys with diffusers' defaults, in the order diffusers writes them. */
export const schedulerDefaults: Record<SchedulerClassName, Readonly<Record<string, unknown>>> = {
  DDPMScheduler: { ...common, variance_type: "fixed_small" },
  DDIMScheduler: { ...common, set_alpha_to_one: true, rescale_betas_zero_snr: false },
};

const allKnownKeys = new Set([...Object.keys(schedulerDefaults.DDPMScheduler), ...Object.keys(schedulerDefaults.DDIMScheduler)]);

function oneOf<T extends string>(key: string, value: unknown, allowed: readonly T[], hint = ""): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  throw new SchedulerConfigError(`scheduler config: ${key} ${JSON.stringify(value)} is not supported (use ${allowed.join(" | ")})${hint}`);
}

function numberAt(config: Record<string, unknown>, key: string, { integer = false } = {}): number {
  const v = config[key];
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
    throw new SchedulerConfigError(`scheduler config: ${key} must be a${integer ? "n integer" : " number"}, got ${JSON.stringify(v)}`);
  return v;
}

function booleanAt(config: Record<string, unknown>, key: string): boolean {
  const v = config[key];
  if (typeof v !== "boolean") throw new SchedulerConfigError(`scheduler config: ${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** More training timesteps than this is a typo, and would allocate schedules of that length. */
const MAX_TIMESTEPS = 1_000_000;

/** A beta is the variance of one step's noise: in (0, 1), or alpha = 1 - beta is not a probability. */
const isBeta = (b: number): boolean => Number.isFinite(b) && b > 0 && b < 1;

/**
 * The betas the config makes must each be in (0, 1) and must not decrease (noise grows with t).
 * The schedules are monotone between their ends, so the ends decide it; trained_betas are checked one by one.
 */
function checkBetas(c: SchedulerConfig): void {
  const fail = (msg: string): never => {
    throw new SchedulerConfigError(`scheduler config: ${msg}`);
  };
  const why = "(the variance of one step's noise; alphas = 1 - beta must stay in (0, 1))";
  const tb = c.trained_betas;
  if (tb !== null) {
    tb.forEach((b, i) => {
      if (!isBeta(b)) fail(`trained_betas[${i}] is ${b}, not in (0, 1) ${why}`);
      if (i > 0 && b < tb[i - 1]!) fail(`trained_betas[${i}] ${b} is below trained_betas[${i - 1}] ${tb[i - 1]}; betas must not decrease with t`);
    });
    return;
  }
  if (c.beta_schedule === "squaredcos_cap_v2") return; // beta_start and beta_end are not used
  for (const key of ["beta_start", "beta_end"] as const) if (!isBeta(c[key])) fail(`${key} ${c[key]} is not in (0, 1) ${why}; DDPM uses 0.0001 and 0.02`);
  if (c.beta_start > c.beta_end) fail(`beta_start ${c.beta_start} is above beta_end ${c.beta_end}; betas must not decrease with t`);
}

/**
 * Fills diffusers' defaults into a parsed scheduler_config.json and checks it. `className`
 * overrides `_class_name` (DDIMScheduler.fromConfig(ddpmConfig)); without either, DDPMScheduler.
 */
export function resolveSchedulerConfig(raw: Record<string, unknown> = {}, className?: string): SchedulerConfig {
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const name = className ?? given._class_name ?? "DDPMScheduler";
  if (name !== "DDPMScheduler" && name !== "DDIMScheduler")
    throw new SchedulerConfigError(`scheduler config: _class_name ${JSON.stringify(name)} is not supported (use DDPMScheduler or DDIMScheduler)`);
  // Defaults of both classes, so a DDIM made from a DDPM config still knows variance_type and back.
  const c: Record<string, unknown> = { ...schedulerDefaults.DDPMScheduler, ...schedulerDefaults.DDIMScheduler, ...given, _class_name: name };
  const T = numberAt(c, "num_train_timesteps", { integer: true });
  if (T < 1) throw new SchedulerConfigError(`scheduler config: num_train_timesteps must be at least 1, got ${T}`);
  if (T > MAX_TIMESTEPS)
    throw new SchedulerConfigError(`scheduler config: num_train_timesteps ${T} is more than ${MAX_TIMESTEPS.toLocaleString("en-US")}; DDPM uses 1000`);
  numberAt(c, "beta_start");
  numberAt(c, "beta_end");
  if (numberAt(c, "clip_sample_range") <= 0)
    throw new SchedulerConfigError(`scheduler config: clip_sample_range must be positive, got ${String(c.clip_sample_range)}`);
  const offset = numberAt(c, "steps_offset", { integer: true });
  if (offset < 0 || offset >= T)
    throw new SchedulerConfigError(`scheduler config: steps_offset must be in [0, num_train_timesteps) = [0, ${T}), got ${offset}`);
  for (const key of ["clip_sample", "set_alpha_to_one", "thresholding", "rescale_betas_zero_snr"]) booleanAt(c, key);
  oneOf("beta_schedule", c.beta_schedule, ["linear", "scaled_linear", "squaredcos_cap_v2"] as const);
  oneOf("prediction_type", c.prediction_type, ["epsilon"] as const, "; v_prediction and sample models are not supported");
  oneOf("variance_type", c.variance_type, ["fixed_small", "fixed_large"] as const);
  oneOf("timestep_spacing", c.timestep_spacing, ["leading", "linspace", "trailing"] as const);
  if (c.thresholding) throw new SchedulerConfigError("scheduler config: thresholding (dynamic thresholding) is not supported; set it to false");
  if (c.rescale_betas_zero_snr) throw new SchedulerConfigError("scheduler config: rescale_betas_zero_snr is not supported; set it to false");
  const tb = c.trained_betas;
  if (tb !== null && !(Array.isArray(tb) && tb.length === T && tb.every((b) => typeof b === "number")))
    throw new SchedulerConfigError(`scheduler config: trained_betas must be null or ${T} numbers (num_train_timesteps)`);
  checkBetas(c as SchedulerConfig);
  return c as SchedulerConfig;
}

/**
 * The JSON diffusers would save for `className`: its own keys, then the keys neither scheduler
 * knows (kept for the round trip). The other class's keys are dropped, as diffusers drops them.
 */
export function schedulerConfigToJSON(config: SchedulerConfig, className: SchedulerClassName): Record<string, unknown> {
  const out: Record<string, unknown> = { _class_name: className };
  if (config._diffusers_version !== undefined) out._diffusers_version = config._diffusers_version;
  for (const key of Object.keys(schedulerDefaults[className])) out[key] = config[key];
  for (const [key, value] of Object.entries(config)) if (!(key in out) && !allKnownKeys.has(key)) out[key] = value;
  return out;
}

/** scheduler_config.json of a scheduler folder, or of a pipeline folder's scheduler/; null if none. */
export function findSchedulerConfig(dir: string): string | null {
  for (const path of [join(dir, "scheduler_config.json"), join(dir, "scheduler", "scheduler_config.json")]) if (existsSync(path)) return path;
  return null;
}

/**
 * Reads a folder's scheduler config (see findSchedulerConfig). A folder without one gets the
 * DDPM defaults: linear betas 1e-4..0.02 over 1000 steps.
 */
export function loadSchedulerConfig(dir: string): SchedulerConfig {
  const path = findSchedulerConfig(dir);
  if (path === null) return resolveSchedulerConfig({});
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new SchedulerConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new SchedulerConfigError(`${path}: expected a JSON object`);
  try {
    return resolveSchedulerConfig(raw as Record<string, unknown>);
  } catch (err) {
    if (err instanceof SchedulerConfigError) err.message = err.message.replace(/^scheduler config/, path);
    throw err;
  }
}
