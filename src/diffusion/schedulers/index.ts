// Noise schedulers: DDPM and DDIM with diffusers' config keys and semantics.
import { loadSchedulerConfig, resolveSchedulerConfig, type SchedulerConfig } from "./config.js";
import { DDIMScheduler } from "./ddim.js";
import { DDPMScheduler } from "./ddpm.js";

export { BaseScheduler, type SchedulerOutput } from "./base.js";
export { betasForAlphaBar, makeBetas } from "./betas.js";
export {
  findSchedulerConfig,
  loadSchedulerConfig,
  resolveSchedulerConfig,
  schedulerConfigToJSON,
  schedulerDefaults,
  SchedulerConfigError,
  type BetaSchedule,
  type PredictionType,
  type SchedulerClassName,
  type SchedulerConfig,
  type TimestepSpacing,
  type VarianceType,
} from "./config.js";
export { DDIMScheduler, SKIP_TYPES, type DDIMStepOptions, type SkipType } from "./ddim.js";
export { DDPMScheduler, type DDPMStepOptions } from "./ddpm.js";
export { ddimQuadTimesteps, numpyLinspace, paperTimesteps, previousTimesteps, roundHalfEven, spacedTimesteps } from "./timesteps.js";

export type Scheduler = DDPMScheduler | DDIMScheduler;

/** The scheduler a (parsed JSON) config's _class_name names (DDPMScheduler when absent). */
export function schedulerFromConfig(config: Partial<SchedulerConfig> | Record<string, unknown>): Scheduler {
  const resolved = resolveSchedulerConfig(config);
  return resolved._class_name === "DDIMScheduler" ? new DDIMScheduler(resolved) : new DDPMScheduler(resolved);
}

/** The scheduler of a scheduler or pipeline folder (DDPM defaults when it has no config). */
export function loadScheduler(dir: string): Scheduler {
  return schedulerFromConfig(loadSchedulerConfig(dir));
}
