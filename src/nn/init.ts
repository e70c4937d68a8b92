// Parameter initialisation as torch.nn's defaults.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

/** Uniform on [-bound, bound). */
export function uniform(shape: number[], bound: number): Tensor {
  return torch.tidy(() => torch.rand(shape).mul(2 * bound).sub(bound));
}

/**
 * Conv2d/Linear defaults: kaiming_uniform(a = sqrt(5)) for the weight and U(+-1/sqrt(fan_in)) for
 * the bias, which both come to a bound of 1/sqrt(fan_in).
 */
export const defaultBound = (fanIn: number): number => (fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0);
