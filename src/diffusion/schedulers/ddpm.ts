// DDPMScheduler (Ho et al. 2020), diffusers 0.17 semantics: ancestral sampling from the
// posterior q(x_{t-1} | x_t, x_0), also on a subsequence of timesteps.
import * as torch from "../../torch/index.js";
import { BaseScheduler, f32, type SchedulerOutput } from "./base.js";
import type { SchedulerConfig } from "./config.js";
import { spacedTimesteps } from "./timesteps.js";

export interface DDPMStepOptions {
  /** The noise added for t > 0; default torch.randn (from the generator manualSeed() seeds). */
  varianceNoise?: torch.Tensor;
}

export class DDPMScheduler extends BaseScheduler {
  readonly className = "DDPMScheduler";

  constructor(config: Partial<SchedulerConfig> = {}) {
    super(config, "DDPMScheduler");
  }

  /** A DDPM sampler with another scheduler's training schedule (diffusers' from_config). */
  static fromConfig(config: Partial<SchedulerConfig>): DDPMScheduler {
    return new DDPMScheduler(config);
  }

  /** Samples with n steps, spaced by the config's timestep_spacing (default "leading"). */
  setTimesteps(numInferenceSteps: number): void {
    const { num_train_timesteps: T, timestep_spacing, steps_offset } = this.config;
    this.useTimesteps(spacedTimesteps(T, numInferenceSteps, timestep_spacing, steps_offset), numInferenceSteps);
  }

  /**
   * One reverse step from x_t: the posterior mean from the predicted x0, plus, for t > 0, noise
   * with the fixed_small (posterior) or fixed_large (beta) variance.
   */
  step(modelOutput: torch.Tensor, t: number, sample: torch.Tensor, { varianceNoise }: DDPMStepOptions = {}): SchedulerOutput {
    const prevT = this.previousTimestep(t);
    const alphaProdT = this.alphaProd(t);
    const alphaProdTPrev = prevT >= 0 ? this.alphaProd(prevT) : 1;
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    const currentAlphaT = f32(alphaProdT / alphaProdTPrev);
    const currentBetaT = f32(1 - currentAlphaT);
    // Formula (7) of the DDPM paper, with alpha_t and beta_t of the (possibly skipping) step.
    const x0Coeff = f32(f32(f32(Math.sqrt(alphaProdTPrev)) * currentBetaT) / betaProdT);
    const sampleCoeff = f32(f32(f32(Math.sqrt(currentAlphaT)) * betaProdTPrev) / betaProdT);
    return torch.tidy(() => {
      const predOriginalSample = this.predictOriginal(modelOutput, sample, alphaProdT);
      let prevSample = predOriginalSample.mul(x0Coeff).add(sample.mul(sampleCoeff));
      if (t > 0) {
        const noise = varianceNoise ?? torch.randn([...modelOutput.shape], { dtype: modelOutput.dtype, device: modelOutput.device });
        let variance = currentBetaT;
        if (this.config.variance_type === "fixed_small") {
          variance = f32(f32(betaProdTPrev / betaProdT) * currentBetaT);
          variance = Math.max(variance, f32(1e-20)); // log-safe, as diffusers clamps it
        }
        prevSample = prevSample.add(noise.mul(f32(Math.sqrt(variance))));
      }
      return { prevSample, predOriginalSample };
    });
  }
}
