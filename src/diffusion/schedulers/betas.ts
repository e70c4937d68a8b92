// Beta schedules. diffusers builds betas as float32 tensors and takes the cumulative product in
// float32 too, so we use the same libtorch ops (CPU) to get the same bits.
import * as torch from "../../torch/index.js";
import type { SchedulerConfig } from "./config.js";

/**
 * The betas of the cosine schedule (Nichol & Dhariwal): 1 - alpha_bar(t2) / alpha_bar(t1) with
 * alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, capped at maxBeta. In float64, as Python floats.
 */
export function betasForAlphaBar(numDiffusionTimesteps: number, maxBeta = 0.999): Float64Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const betas = new Float64Array(numDiffusionTimesteps);
  for (let i = 0; i < numDiffusionTimesteps; i++) {
    const t1 = i / numDiffusionTimesteps;
    const t2 = (i + 1) / numDiffusionTimesteps;
    betas[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return betas;
}

/** The config's betas as a float32 tensor [num_train_timesteps] (trained_betas win). */
export function makeBetas(config: SchedulerConfig): torch.Tensor {
  const T = config.num_train_timesteps;
  if (config.trained_betas !== null) return torch.tensor(Float32Array.from(config.trained_betas));
  switch (config.beta_schedule) {
    case "linear":
      return torch.linspace(config.beta_start, config.beta_end, T, { dtype: "float32" });
    case "scaled_linear":
      // Latent diffusion's schedule: linear in sqrt(beta).
      return torch.tidy(() => torch.linspace(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), T, { dtype: "float32" }).square());
    case "squaredcos_cap_v2":
      return torch.tensor(Float32Array.from(betasForAlphaBar(T)));
  }
}
