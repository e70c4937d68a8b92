// Grad-mode scopes and the optimizer kernels that run over all parameters in one native call.
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` without recording operations for autograd (torch.no_grad). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);
/** Runs `fn` with autograd recording, even inside noGrad (torch.enable_grad). */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);
export const isGradEnabled = (): boolean => native.isGradEnabled();

const handles = (ts: readonly Tensor[]): number[] => ts.map((t) => t.handle);

/** Sets every parameter's gradient to null (optimizer.zero_grad(set_to_none=True)). */
export function zeroGrad(params: readonly Tensor[]): void {
  native.zeroGrad(handles(params));
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * One torch.optim.AdamW step over all parameters with a gradient. `step` counts from 1 and
 * sets the bias correction; expAvg and expAvgSq are the moment buffers, updated in place.
 */
export function adamwStep(params: readonly Tensor[], expAvg: readonly Tensor[], expAvgSq: readonly Tensor[], step: number, h: AdamWHyper): void {
  native.adamwStep(handles(params), handles(expAvg), handles(expAvgSq), step, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay);
}

/** Scales all gradients so their joint L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  return native.clipGradNorm(handles(params), maxNorm);
}

/** ema = decay * ema + (1 - decay) * param, for each pair, in place. */
export function emaUpdate(ema: readonly Tensor[], params: readonly Tensor[], decay: number): void {
  native.emaUpdate(handles(ema), handles(params), decay);
}
