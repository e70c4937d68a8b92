// Free functions: joining, selection, linear algebra, and torch.nn.functional.
import { native } from "./native.js";
import { ops, Tensor } from "./tensor.js";

type Pair = number | [number, number];
const pair = (v: Pair): number[] => (typeof v === "number" ? [v, v] : [...v]);
const handles = (ts: readonly Tensor[]): number[] => ts.map((t) => t.handle);

export const { add, sub, mul, div, pow, maximum, minimum, matmul, bmm, eq, ne, lt, le, gt, ge } = ops;

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.cat(handles(tensors), dim));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.stack(handles(tensors), dim));
}

/** Elements of `a` where `condition` holds, else of `b`; either may be a number. */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const mask = (a instanceof Tensor ? 0 : 1) | (b instanceof Tensor ? 0 : 2);
  return new Tensor(native.where(condition.handle, a instanceof Tensor ? a.handle : a, b instanceof Tensor ? b.handle : b, mask));
}

/** beta * input + alpha * (batch1 @ batch2) */
export function baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, { beta = 1, alpha = 1 } = {}): Tensor {
  return new Tensor(native.baddbmm(input.handle, batch1.handle, batch2.handle, beta, alpha));
}

/** Same shape and the same values. */
export function equal(a: Tensor, b: Tensor): boolean {
  return native.equal(a.handle, b.handle);
}

export function trace(t: Tensor): Tensor {
  return ops.trace(t);
}

/** Eigen-decomposition of a symmetric matrix: [eigenvalues ascending, eigenvectors as columns]. */
export function eigh(t: Tensor, uplo: "L" | "U" = "L"): [Tensor, Tensor] {
  const [l, q] = native.eigh(t.handle, uplo);
  return [new Tensor(l), new Tensor(q)];
}

// ---- torch.nn.functional ----

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** x [N, C_in, H, W], weight [C_out, C_in / groups, kH, kW], bias [C_out]. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const { stride = 1, padding = 0, dilation = 1, groups = 1 } = options;
  return new Tensor(native.conv2d(x.handle, weight.handle, bias?.handle ?? null, pair(stride), pair(padding), pair(dilation), groups));
}

/** x [..., in] @ weight[out, in]^T + bias */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

/**
 * A linear layer's weight [out, in] (and bias) applied to the channels of x [N, in, H, W]: the
 * result is [N, out, H, W], what `linear` gives on the tokens x[n, :, h, w], but run as a 1x1
 * convolution, which keeps x's layout (NCHW or channels_last) and runs in oneDNN.
 */
export function conv1x1(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return new Tensor(native.conv1x1(x.handle, weight.handle, bias?.handle ?? null));
}

export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return new Tensor(native.groupNorm(x.handle, numGroups, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export function layerNorm(x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, options: BatchNormOptions = {}): Tensor {
  const { weight = null, bias = null, training = false, momentum = 0.1, eps = 1e-5 } = options;
  return new Tensor(
    native.batchNorm(x.handle, runningMean?.handle ?? null, runningVar?.handle ?? null, weight?.handle ?? null, bias?.handle ?? null, training, momentum, eps),
  );
}

/** Nearest-neighbour resize of [N, C, H, W] to `size`, or by an integer `scaleFactor`. */
export function interpolate(x: Tensor, options: { size?: Pair; scaleFactor?: Pair; mode?: "nearest" }): Tensor {
  if ((options.mode ?? "nearest") !== "nearest") throw new Error(`interpolate(): mode ${options.mode} is not supported (only nearest)`);
  return new Tensor(
    native.interpolateNearest(x.handle, options.size === undefined ? null : pair(options.size), options.scaleFactor === undefined ? null : pair(options.scaleFactor)),
  );
}

/** Pads the last dims: pads = [left, right, top, bottom, ...], as F.pad. */
export function pad(x: Tensor, pads: number[], { mode = "constant", value = 0 }: { mode?: "constant" | "reflect" | "replicate"; value?: number } = {}): Tensor {
  return new Tensor(native.pad(x.handle, pads, mode, value));
}

export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return new Tensor(native.dropout(x.handle, p, training));
}

export type Reduction = "mean" | "sum" | "none";

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(native.mseLoss(input.handle, target.handle, reduction));
}

/** logits [N, C], target int64 class indices [N]. */
export function crossEntropy(logits: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(native.crossEntropy(logits.handle, target.handle, reduction));
}

export function avgPool2d(x: Tensor, kernelSize: Pair, stride: Pair = kernelSize, padding: Pair = 0): Tensor {
  return new Tensor(native.avgPool2d(x.handle, pair(kernelSize), pair(stride), pair(padding)));
}
export function maxPool2d(x: Tensor, kernelSize: Pair, stride: Pair = kernelSize, padding: Pair = 0): Tensor {
  return new Tensor(native.maxPool2d(x.handle, pair(kernelSize), pair(stride), pair(padding)));
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return new Tensor(native.adaptiveAvgPool2d(x.handle, pair(outputSize)));
}

export const silu = (x: Tensor): Tensor => x.silu();
export const relu = (x: Tensor): Tensor => x.relu();
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();
export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);
