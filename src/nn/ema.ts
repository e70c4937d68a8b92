// Exponential moving average of parameters, as diffusers' EMAModel: the decay warms up as
// 1 - (1 + step / invGamma)^-power, capped at maxDecay.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export interface EMAOptions {
  maxDecay?: number;
  minDecay?: number;
  invGamma?: number;
  power?: number;
  updateAfterStep?: number;
}

export class EMA {
  readonly shadow: Tensor[];
  readonly options: Required<EMAOptions>;
  optimizationStep = 0;

  constructor(params: Tensor[], options: EMAOptions = {}) {
    this.options = { maxDecay: 0.9999, minDecay: 0, invGamma: 1, power: 3 / 4, updateAfterStep: 0, ...options };
    this.shadow = torch.noGrad(() => torch.tidy(() => params.map((p) => torch.keep(p.detach().clone()))));
  }

  /** The decay used at the current optimization step. */
  decay(): number {
    const { maxDecay, minDecay, invGamma, power, updateAfterStep } = this.options;
    const step = Math.max(0, this.optimizationStep - updateAfterStep - 1);
    if (step <= 0) return 0;
    const d = 1 - (1 + step / invGamma) ** -power;
    return Math.max(minDecay, Math.min(d, maxDecay));
  }

  step(params: Tensor[]): void {
    this.optimizationStep += 1;
    torch.emaUpdate(this.shadow, params, this.decay());
  }

  /** Copies the averaged weights into `params` (for sampling or saving). */
  copyTo(params: Tensor[]): void {
    torch.noGrad(() => params.forEach((p, i) => p.copy_(this.shadow[i]!)));
  }

  dispose(): void {
    torch.dispose(this.shadow);
  }
}
