// The denoising objective: noise a clean batch to timestep t and regress the noise (epsilon
// prediction), mean squared error. A class-conditional model also takes the batch's labels.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";
import type { BaseScheduler } from "./schedulers/index.js";

/** MSE(model(add_noise(x0, noise, t), t, classLabels), noise), averaged over every element. */
export function denoisingLoss(model: UNet2DModel, scheduler: BaseScheduler, x0: Tensor, noise: Tensor, timesteps: Tensor, classLabels?: Tensor): Tensor {
  return torch.tidy(() => torch.mseLoss(model.forward(scheduler.addNoise(x0, noise, timesteps), timesteps, classLabels), noise));
}
