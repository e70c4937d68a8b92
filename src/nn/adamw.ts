// AdamW as torch.optim.AdamW, over the native one-call-per-step kernel, with a state that can be
// saved and restored so a resumed run continues exactly.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken so far. */
  stepCount = 0;
  readonly params: Tensor[];
  readonly expAvg: Tensor[];
  readonly expAvgSq: Tensor[];

  constructor(params: Tensor[], { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2 }: AdamWOptions = {}) {
    this.params = params;
    this.lr = lr;
    this.betas = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.expAvg = params.map((p) => torch.keep(torch.zerosLike(p)));
    this.expAvgSq = params.map((p) => torch.keep(torch.zerosLike(p)));
  }

  step(): void {
    this.stepCount += 1;
    torch.adamwStep(this.params, this.expAvg, this.expAvgSq, this.stepCount, {
      lr: this.lr,
      beta1: this.betas[0],
      beta2: this.betas[1],
      eps: this.eps,
      weightDecay: this.weightDecay,
    });
  }

  zeroGrad(): void {
    torch.zeroGrad(this.params);
  }

  /** The moment buffers by parameter index ("exp_avg.3"); the step count goes in metadata. */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.expAvg.forEach((t, i) => out.set(`exp_avg.${i}`, t));
    this.expAvgSq.forEach((t, i) => out.set(`exp_avg_sq.${i}`, t));
    return out;
  }

  loadStateDict(state: Map<string, Tensor>, stepCount: number): void {
    torch.noGrad(() => {
      for (const [name, buffers] of [["exp_avg", this.expAvg], ["exp_avg_sq", this.expAvgSq]] as const) {
        buffers.forEach((t, i) => {
          const src = state.get(`${name}.${i}`);
          if (!src) throw new Error(`optimizer state has no ${name}.${i}: it was saved for another model`);
          t.copy_(src);
        });
      }
    });
    this.stepCount = stepCount;
  }

  dispose(): void {
    torch.dispose([this.expAvg, this.expAvgSq]);
  }
}
