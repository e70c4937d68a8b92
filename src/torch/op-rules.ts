// One rule per native op, as Torch-Pruning's ops.py has one per layer type: its arguments by name
// in the addon's order, how it couples the channels of its inputs and outputs, and its MACs by
// count_ops_and_params. observeOps names the arguments from here, and the dependency graph and the
// counter know nothing else about an op: a new op is one entry. An op without a rule freezes the
// channels it touches.
import type { ObservedArgs, ObservedTensor } from "./observe.js";

/**
 * How an argument is observed: a tensor (or null), a list of tensors, a tensor or a scalar as the
 * op's scalar mask (its last argument) says, or a plain value.
 */
export type ArgKind = "tensor" | "tensors" | "operand" | "value";

/**
 * How an op's channels flow from its inputs to its outputs; the dependency graph has one handler
 * per kind, which reads the arguments by the names below.
 */
export type Coupling =
  /** conv/linear: `input`'s channels on `axis` are `weight`'s in-channels; the output's are its out-channels. */
  | { kind: "layer"; layer: "conv" | "linear"; axis: number }
  /** A per-channel normalisation of `input` on `axis`: its other tensor arguments hold one entry per channel. */
  | { kind: "norm"; axis: number }
  /** The output has `input`'s channels where `input` had them. */
  | { kind: "same" }
  /** Broadcasting over all tensor arguments: channels aligned from the right are the same channels. */
  | { kind: "elementwise" }
  /** `input` @ `other`. */
  | { kind: "matmul" }
  /** `input` + `batch1` @ `batch2`. */
  | { kind: "baddbmm" }
  /** `tensors` joined along `dim`: cat, or stack (`newAxis`). */
  | { kind: "join"; newAxis: boolean }
  | { kind: "reshape" }
  /** A new axis at `dim`. */
  | { kind: "unsqueeze" }
  /** Axes reordered as `dims`. */
  | { kind: "permute" }
  /** Axes `dim0` and `dim1` swapped. */
  | { kind: "transpose" }
  /** New leading axes (expand, repeat): the channels must keep their count. */
  | { kind: "expand" }
  /** Picks or reorders entries along `dim` (or `dims`): channels survive it on any other axis; `dropsDim` when that axis goes away. */
  | { kind: "index"; dropsDim: boolean }
  /** Pads the last `pad.length / 2` axes. */
  | { kind: "pad" }
  /** Works on the last two (spatial) axes. */
  | { kind: "spatial" }
  /** Reduces over `dim` (one, several, or all when null), keeping the axes when `keepdim`. */
  | { kind: "reduce" }
  /** A loss: its output carries no channels and its inputs' channels stay free. */
  | { kind: "loss" }
  /** The channels it touches get a meaning pruning must not change. */
  | { kind: "freeze" };

export interface OpRule {
  /** The argument names, in the order the addon takes them, with how each is observed. */
  args: Readonly<Record<string, ArgKind>>;
  channels: Coupling;
  /** The argument that is a module's own weight: that module runs the op (its MACs, its autograd node). */
  module?: string;
  /** Multiply-accumulates by Torch-Pruning's count_ops_and_params; none counts 0. */
  macs?: (args: ObservedArgs, outputs: readonly ObservedTensor[]) => number;
}

const T: ArgKind = "tensor";
const L: ArgKind = "tensors";
const M: ArgKind = "operand";
const V: ArgKind = "value";

const SAME: Coupling = { kind: "same" };
const ELEMENTWISE: Coupling = { kind: "elementwise" };
const RESHAPE: Coupling = { kind: "reshape" };
const EXPAND: Coupling = { kind: "expand" };
const INDEX: Coupling = { kind: "index", dropsDim: false };
const SPATIAL: Coupling = { kind: "spatial" };
const REDUCE: Coupling = { kind: "reduce" };
const FREEZE: Coupling = { kind: "freeze" };

const numel = (t: ObservedTensor): number => t.shape.reduce((a, b) => a * b, 1);
const each = (names: readonly string[], rule: OpRule): Record<string, OpRule> => Object.fromEntries(names.map((n) => [n, rule]));

const UNARY = ["neg", "abs", "sign", "sqrt", "rsqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "silu", "relu", "floor", "ceil", "round", "reciprocal", "logicalNot", "isnan", "isfinite", "clone", "detach"];
const BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "remainder", "eq", "ne", "lt", "le", "gt", "ge", "logicalAnd", "logicalOr"];
const BINARY_ARGS = { input: M, other: M, scalarMask: V };

// Norms count 2 * numel(input) (normalise, then scale and shift).
const normMacs: OpRule["macs"] = ({ input }) => 2 * numel(input as ObservedTensor);
// numel(input) * out (+ out with a bias, once per call as Torch-Pruning counts it)
const linearMacs: OpRule["macs"] = ({ input, weight, bias }) => numel(input as ObservedTensor) * (weight as ObservedTensor).shape[0]! + (bias ? (weight as ObservedTensor).shape[0]! : 0);

const RULES: Record<string, OpRule> = {
  // views and indexing
  reshape: { args: { input: T, shape: V }, channels: RESHAPE },
  view: { args: { input: T, shape: V }, channels: RESHAPE },
  flatten: { args: { input: T, startDim: V, endDim: V }, channels: RESHAPE },
  squeeze: { args: { input: T, dim: V }, channels: RESHAPE },
  unsqueeze: { args: { input: T, dim: V }, channels: { kind: "unsqueeze" } },
  permute: { args: { input: T, dims: V }, channels: { kind: "permute" } },
  transpose: { args: { input: T, dim0: V, dim1: V }, channels: { kind: "transpose" } },
  expand: { args: { input: T, size: V }, channels: EXPAND },
  repeat: { args: { input: T, repeats: V }, channels: EXPAND },
  narrow: { args: { input: T, dim: V, start: V, length: V }, channels: INDEX },
  slice: { args: { input: T, dim: V, start: V, end: V, step: V }, channels: INDEX },
  select: { args: { input: T, dim: V, index: V }, channels: { kind: "index", dropsDim: true } },
  indexSelect: { args: { input: T, dim: V, index: T }, channels: INDEX },
  gather: { args: { input: T, dim: V, index: T }, channels: INDEX },
  split: { args: { input: T, splitSize: V, dim: V }, channels: INDEX },
  chunk: { args: { input: T, chunks: V, dim: V }, channels: INDEX },
  flip: { args: { input: T, dims: V }, channels: INDEX },
  sort: { args: { input: T, dim: V, descending: V }, channels: INDEX },
  argsort: { args: { input: T, dim: V, descending: V }, channels: INDEX },
  topk: { args: { input: T, k: V, dim: V, largest: V, sorted: V }, channels: INDEX },
  cat: { args: { tensors: L, dim: V }, channels: { kind: "join", newAxis: false } },
  stack: { args: { tensors: L, dim: V }, channels: { kind: "join", newAxis: true } },
  contiguous: { args: { input: T, memoryFormat: V }, channels: SAME },
  to: { args: { input: T, device: V, dtype: V }, channels: SAME },

  // element-wise math
  ...each(UNARY, { args: { input: T }, channels: SAME }),
  ...each(BINARY, { args: BINARY_ARGS, channels: ELEMENTWISE }),
  where: { args: { condition: T, input: M, other: M, scalarMask: V }, channels: ELEMENTWISE },
  clamp: { args: { input: T, min: V, max: V }, channels: SAME },
  cumsum: { args: { input: T, dim: V }, channels: SAME },
  cumprod: { args: { input: T, dim: V }, channels: SAME },
  softmax: { args: { input: T, dim: V }, channels: SAME },
  logSoftmax: { args: { input: T, dim: V }, channels: SAME },
  // As Torch-Pruning's trace does, attention's matmuls keep channels (0 MACs, as it counts them).
  matmul: { args: BINARY_ARGS, channels: { kind: "matmul" } },
  bmm: { args: BINARY_ARGS, channels: { kind: "matmul" } },
  baddbmm: { args: { input: T, batch1: T, batch2: T, beta: V, alpha: V }, channels: { kind: "baddbmm" } },
  // in place: the result is the first argument's tensor
  copy_: { args: { input: T, src: T }, channels: ELEMENTWISE },
  add_: { args: { input: T, other: M, alpha: V, otherIsScalar: V }, channels: ELEMENTWISE },
  mul_: { args: { input: T, other: M, otherIsScalar: V }, channels: ELEMENTWISE },
  fill_: { args: { input: T, value: V }, channels: FREEZE },
  zero_: { args: { input: T }, channels: FREEZE },

  // reductions
  sum: { args: { input: T, dim: V, keepdim: V, dtype: V }, channels: REDUCE },
  mean: { args: { input: T, dim: V, keepdim: V }, channels: REDUCE },
  var: { args: { input: T, dim: V, correction: V, keepdim: V }, channels: REDUCE },
  std: { args: { input: T, dim: V, correction: V, keepdim: V }, channels: REDUCE },
  norm: { args: { input: T, p: V, dim: V, keepdim: V }, channels: REDUCE },
  ...each(["max", "min", "argmax", "argmin"], { args: { input: T, dim: V, keepdim: V }, channels: REDUCE }),
  // linear algebra over whole matrices mixes the channels
  trace: { args: { input: T }, channels: FREEZE },
  eigh: { args: { input: T, uplo: V }, channels: FREEZE },

  // torch.nn.functional
  conv2d: {
    args: { input: T, weight: T, bias: T, stride: V, padding: V, dilation: V, groups: V },
    channels: { kind: "layer", layer: "conv", axis: 1 },
    module: "weight",
    // kh * kw * Cin / groups per output element (+ 1 with a bias)
    macs: ({ weight, bias }, [out]) => {
      const [, cinPerGroup, kh, kw] = (weight as ObservedTensor).shape as [number, number, number, number];
      return numel(out!) * (kh * kw * cinPerGroup) + (bias ? numel(out!) : 0);
    },
  },
  linear: {
    args: { input: T, weight: T, bias: T },
    channels: { kind: "layer", layer: "linear", axis: -1 },
    module: "weight",
    macs: linearMacs,
  },
  // a linear layer on dim 1 (attention's projections on NCHW): its MACs counted as the linear's
  conv1x1: { args: { input: T, weight: T, bias: T }, channels: { kind: "layer", layer: "linear", axis: 1 }, module: "weight", macs: linearMacs },
  groupNorm: { args: { input: T, numGroups: V, weight: T, bias: T, eps: V }, channels: { kind: "norm", axis: 1 }, module: "weight", macs: normMacs },
  layerNorm: { args: { input: T, normalizedShape: V, weight: T, bias: T, eps: V }, channels: { kind: "norm", axis: -1 }, module: "weight", macs: normMacs },
  batchNorm: {
    args: { input: T, runningMean: T, runningVar: T, weight: T, bias: T, training: V, momentum: V, eps: V },
    channels: { kind: "norm", axis: 1 },
    module: "weight",
    macs: normMacs,
  },
  interpolateNearest: { args: { input: T, size: V, scaleFactor: V }, channels: SPATIAL },
  avgPool2d: { args: { input: T, kernelSize: V, stride: V, padding: V }, channels: SPATIAL },
  maxPool2d: { args: { input: T, kernelSize: V, stride: V, padding: V }, channels: SPATIAL },
  adaptiveAvgPool2d: { args: { input: T, outputSize: V }, channels: SPATIAL },
  pad: { args: { input: T, pad: V, mode: V, value: V }, channels: { kind: "pad" } },
  dropout: { args: { input: T, p: V, training: V }, channels: SAME },
  mseLoss: { args: { input: T, target: T, reduction: V }, channels: { kind: "loss" } },
  crossEntropy: { args: { input: T, target: T, reduction: V }, channels: { kind: "loss" } },
};

/** The rule of each native tensor op, by the addon's function name. */
export const OP_RULES: ReadonlyMap<string, OpRule> = new Map(Object.entries(RULES));

/**
 * Native functions that are not tensor ops (metadata, lifetime, autograd bookkeeping, optimizer
 * kernels) or that create tensors from nothing: observeOps does not report them.
 */
export const NOT_OPS: ReadonlySet<string> = new Set([
  "dispose", "disposeMany", "isDisposed", "memory", "shape", "dtype", "device", "isContiguous",
  "setNumThreads", "getNumThreads", "manualSeed", "cudaDeviceCount", "cudaSynchronize", "toBuffer", "item", "equal",
  "requiresGrad", "setRequiresGrad", "isLeaf", "retainGrad", "backward", "grad", "setGrad", "zeroGrad",
  "setGradEnabled", "isGradEnabled", "adamwStep", "clipGradNorm", "emaUpdate",
  "empty", "zeros", "ones", "full", "arange", "linspace", "rand", "randn", "randint", "randperm", "fromBuffer",
  // torch.distributed: collectives between processes, never part of a model's forward
  "distInit", "distDestroy", "distIsInitialized", "distAllReduce", "distBroadcast", "distAllGather", "distBarrier", "distExitWithParent",
]);
