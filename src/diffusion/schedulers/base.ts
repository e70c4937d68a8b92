// What DDPM and DDIM share: the training noise schedule (betas, alphas, their cumulative
// product), the forward process addNoise, and the inference timesteps.
import * as torch from "../../torch/index.js";
import { makeBetas } from "./betas.js";
import { resolveSchedulerConfig, schedulerConfigToJSON, type SchedulerClassName, type SchedulerConfig } from "./config.js";
import { previousTimesteps } from "./timesteps.js";

/** What step() returns: x_{t-1} and the model's estimate of x_0 (clipped when clip_sample). */
export interface SchedulerOutput {
  prevSample: torch.Tensor;
  predOriginalSample: torch.Tensor;
}

/** Rounds to float32: scalar arithmetic the way diffusers does it on 0-dim float32 tensors. */
export const f32 = Math.fround;

export abstract class BaseScheduler {
  abstract readonly className: SchedulerClassName;
  readonly config: SchedulerConfig;
  /** float32 [num_train_timesteps], kept for the scheduler's lifetime. */
  readonly betas: torch.Tensor;
  readonly alphas: torch.Tensor;
  readonly alphasCumprod: torch.Tensor;
  /** alphasCumprod's values, for the per-step scalars. */
  protected readonly acp: Float32Array;
  /** The timesteps sampling visits, descending; all of 0..T-1 until setTimesteps(). */
  timesteps: number[];
  numInferenceSteps: number | null = null;
  /** The scale of the initial noise: 1 for DDPM and DDIM. */
  readonly initNoiseSigma = 1;
  #prev = new Map<number, number>();

  constructor(config: Partial<SchedulerConfig>, className: SchedulerClassName) {
    this.config = resolveSchedulerConfig(config, className);
    [this.betas, this.alphas, this.alphasCumprod] = torch.tidy(() => {
      const betas = makeBetas(this.config);
      const alphas = torch.sub(1, betas);
      return [betas, alphas, alphas.cumprod(0)].map(torch.keep);
    });
    this.acp = this.alphasCumprod.toTypedArray() as Float32Array;
    const T = this.config.num_train_timesteps;
    this.timesteps = Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  get numTrainTimesteps(): number {
    return this.config.num_train_timesteps;
  }

  /**
   * Installs a sampling schedule (descending). A custom list (the DDIM codebase's) steps from
   * each entry to the next; otherwise the previous timestep is diffusers' t - T // n, whatever
   * the list holds.
   */
  protected useTimesteps(timesteps: number[], numInferenceSteps: number, { custom = false } = {}): void {
    this.timesteps = timesteps;
    this.numInferenceSteps = numInferenceSteps;
    this.#prev = custom ? previousTimesteps(timesteps) : new Map();
  }

  /** The timestep sampling goes to from t; negative means "the clean image". */
  previousTimestep(t: number): number {
    const n = this.numInferenceSteps ?? this.numTrainTimesteps;
    return this.#prev.get(t) ?? t - Math.floor(this.numTrainTimesteps / n);
  }

  /** alphas_cumprod[t] as a float32 value, checking t. */
  protected alphaProd(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.acp.length)
      throw new RangeError(`${this.className}: timestep ${t} is outside 0..${this.acp.length - 1}`);
    return this.acp[t]!;
  }

  /** x0 from x_t and the predicted noise (epsilon prediction), clipped when clip_sample. */
  protected predictOriginal(modelOutput: torch.Tensor, sample: torch.Tensor, alphaProdT: number): torch.Tensor {
    const betaProdT = f32(1 - alphaProdT);
    const x0 = sample.sub(modelOutput.mul(f32(Math.sqrt(betaProdT)))).div(f32(Math.sqrt(alphaProdT)));
    const range = this.config.clip_sample_range;
    return this.config.clip_sample ? x0.clamp(-range, range) : x0;
  }

  /**
   * The forward process q(x_t | x_0): sqrt(acp[t]) * x0 + sqrt(1 - acp[t]) * noise, with
   * `timesteps` an integer tensor [B] broadcast over the other dims of `original` [B, ...].
   */
  addNoise(original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor): torch.Tensor {
    return torch.tidy(() => {
      const acp = this.alphasCumprod.to({ device: original.device, dtype: original.dtype }).indexSelect(0, timesteps.to(original.device).flatten());
      const shape = [acp.size(0), ...original.shape.slice(1).map(() => 1)];
      const sqrtAlphaProd = acp.sqrt().reshape(shape);
      const sqrtOneMinusAlphaProd = torch.sub(1, acp).sqrt().reshape(shape);
      return sqrtAlphaProd.mul(original).add(sqrtOneMinusAlphaProd.mul(noise));
    });
  }

  /** scheduler_config.json as diffusers writes it for this class (unknown keys kept). */
  toJSON(): Record<string, unknown> {
    return schedulerConfigToJSON(this.config, this.className);
  }

  /** Frees the schedule's tensors. */
  dispose(): void {
    torch.dispose([this.betas, this.alphas, this.alphasCumprod]);
  }
}
