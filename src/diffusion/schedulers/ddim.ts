// DDIMScheduler (Song et al. 2021) as the paper samples with it: diffusers 0.17 semantics with
// the skip_type of Diff-Pruning's copy ("uniform", "quad"), plus diffusers' own spacings and the
// DDIM codebase's quadratic skip.
import * as torch from "../../torch/index.js";
import { BaseScheduler, f32, type SchedulerOutput } from "./base.js";
import type { SchedulerConfig } from "./config.js";
import { ddimQuadTimesteps, paperTimesteps, spacedTimesteps } from "./timesteps.js";

/**
 * Which timesteps DDIM visits, and where each step goes.
 * - "uniform" (default), "quad": the paper's sampler (Diff-Pruning's ddpm_sample.py and its
 *   DDIMScheduler): round(i (T-1)/(n-1)) or round(i^2 (T-1)/(n-1)^2), i = n-1..0, plus
 *   steps_offset; each step goes from t to t - T // n, not to the next entry (999 -> 899 for
 *   T 1000, n 10, while the next model call is at 888). Kept as the reference has it.
 * - "leading", "linspace", "trailing": diffusers' timestep_spacing of that name (0.17 knows only
 *   leading), stepping from t to t - T // n as diffusers' DDIM does; "config": the folder's
 *   timestep_spacing.
 * - "ddim-quad": the DDIM codebase's int(linspace(0, sqrt(0.8 T), n)^2), each entry stepping to
 *   the next.
 */
export type SkipType = "uniform" | "quad" | "leading" | "linspace" | "trailing" | "config" | "ddim-quad";

/** Every SkipType, the paper's first (for the CLI's choices). */
export const SKIP_TYPES: readonly SkipType[] = ["uniform", "quad", "leading", "linspace", "trailing", "config", "ddim-quad"];

export interface DDIMStepOptions {
  /** 0 (default) is deterministic DDIM, 1 is DDPM-like ancestral sampling. */
  eta?: number;
  /** The noise used when eta > 0; default torch.randn. */
  varianceNoise?: torch.Tensor;
}

export class DDIMScheduler extends BaseScheduler {
  readonly className = "DDIMScheduler";
  /** alpha_prod before the first timestep: what the last step lands on. */
  readonly finalAlphaCumprod: number;

  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, "DDIMScheduler");
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.acp[0]!;
  }

  /** A DDIM sampler for a model trained with another scheduler's schedule (diffusers' from_config). */
  static fromConfig(config: Partial<SchedulerConfig>): DDIMScheduler {
    return new DDIMScheduler(config);
  }

  /** The sampling timesteps for n steps; `skip` says which (see SkipType; default the paper's "uniform"). */
  setTimesteps(numInferenceSteps: number, { skip = "uniform" }: { skip?: SkipType } = {}): void {
    const { num_train_timesteps: T, timestep_spacing, steps_offset } = this.config;
    const n = numInferenceSteps;
    switch (skip) {
      case "uniform":
      case "quad":
        return this.useTimesteps(paperTimesteps(T, n, skip, steps_offset), n);
      case "ddim-quad":
        return this.useTimesteps(ddimQuadTimesteps(T, n), n, { custom: true });
      case "config":
        return this.useTimesteps(spacedTimesteps(T, n, timestep_spacing, steps_offset), n);
      case "leading":
      case "linspace":
      case "trailing":
        return this.useTimesteps(spacedTimesteps(T, n, skip, steps_offset), n);
      default:
        throw new RangeError(`DDIMScheduler.setTimesteps(): unknown skip ${JSON.stringify(skip)} (use ${SKIP_TYPES.join(" | ")})`);
    }
  }

  /** sigma_t^2 / eta^2: the DDPM posterior variance between t and prevT (formula 16 of the paper). */
  #variance(alphaProdT: number, alphaProdTPrev: number): number {
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    return f32(f32(betaProdTPrev / betaProdT) * f32(1 - f32(alphaProdT / alphaProdTPrev)));
  }

  /**
   * One DDIM step (formula 12 of the paper): x_prev = sqrt(acp_prev) x0 +
   * sqrt(1 - acp_prev - sigma^2) eps + sigma z, with sigma = eta * sqrt(variance).
   */
  step(modelOutput: torch.Tensor, t: number, sample: torch.Tensor, { eta = 0, varianceNoise }: DDIMStepOptions = {}): SchedulerOutput {
    if (this.numInferenceSteps === null) throw new Error("DDIMScheduler.step(): call setTimesteps() first");
    const prevT = this.previousTimestep(t);
    const alphaProdT = this.alphaProd(t);
    const alphaProdTPrev = prevT >= 0 ? this.alphaProd(prevT) : this.finalAlphaCumprod;
    const stdDevT = f32(f32(eta) * f32(Math.sqrt(this.#variance(alphaProdT, alphaProdTPrev))));
    const directionCoeff = f32(Math.sqrt(f32(f32(1 - alphaProdTPrev) - f32(stdDevT * stdDevT))));
    return torch.tidy(() => {
      const predOriginalSample = this.predictOriginal(modelOutput, sample, alphaProdT);
      // The direction pointing to x_t uses the model's epsilon, not one re-derived from the clipped x0.
      let prevSample = predOriginalSample.mul(f32(Math.sqrt(alphaProdTPrev))).add(modelOutput.mul(directionCoeff));
      if (eta > 0) {
        const noise = varianceNoise ?? torch.randn([...modelOutput.shape], { dtype: modelOutput.dtype, device: modelOutput.device });
        prevSample = prevSample.add(noise.mul(stdDevT));
      }
      return { prevSample, predOriginalSample };
    });
  }
}
