// The ONNX form of each native op, keyed by the op names of OP_RULES (whose argument names the
// emitters read): one small function per op, as the graph and the counter have one rule per op.
// An op missing here cannot be exported. Opset 17, and only ops onnxruntime's CPU provider runs:
// GroupNorm is InstanceNormalization over [N, groups, -1] (GroupNormalization needs opset 18).
import { isObservedTensor, type DType, type ObservedOp, type ObservedTensor } from "../torch/index.js";
import { Unsupported, type OnnxBuilder } from "./builder.js";

/** What an emitter sees of one traced op. */
export interface EmitContext {
  readonly g: OnnxBuilder;
  /** The op as traced at the first batch size; its arguments by their OP_RULES names. */
  readonly op: ObservedOp;
  /** The ONNX value of tensor argument `name`. */
  tensor(name: string): string;
  /** The same, or null where the argument is null (an optional bias). */
  optional(name: string): string | null;
  /** The ONNX values of a list-of-tensors argument. */
  tensors(name: string): string[];
  /** A tensor argument or output's shape at the first batch size. */
  shape(t: string | ObservedTensor): readonly number[];
  dtype(t: string | ObservedTensor): DType;
  /** Plain argument `name`; it must not change with the batch. */
  value<T>(name: string): T;
  /** What `read` takes from the op; it must not change with the batch. */
  fixed<T>(read: (op: ObservedOp) => T): T;
  /** Sizes that `read` takes from the op, as an int64 vector that follows the batch (see OnnxBuilder.sizes). */
  sizes(read: (op: ObservedOp) => readonly number[], options?: { infer?: boolean }): string;
  /** Operand `name` (a tensor, or a scalar as the op's mask says) as a value of `dtype`. */
  operand(name: string, dtype: DType): string;
  /** `value` converted from `from` to `to` (no node when they are the same). */
  cast(value: string, from: DType, to: DType): string;
}

/** Emits an op's nodes; returns the ONNX names of its outputs, in order. */
export type Emitter = (c: EmitContext) => string | string[];

const INT64_MAX = Number.MAX_SAFE_INTEGER; // Slice clamps its ends to the axis
const axisOf = (dim: number, rank: number): number => (dim < 0 ? dim + rank : dim);
const isFloat = (d: DType): boolean => d === "float32" || d === "float64";
/** The op's (first) output. */
const out = (c: EmitContext): ObservedTensor => c.op.outputs[0]!;

/** The axes a reduction's `dim` names (one, several, or null for all). */
function axes(c: EmitContext): number[] {
  const dims = c.value<number | number[] | null>("dim");
  const rank = c.shape("input").length;
  return dims === null ? Array.from({ length: rank }, (_, i) => i) : [dims].flat().map((d) => axisOf(d, rank));
}

const reduce = (opType: string, axesAsInput: boolean): Emitter => (c) => {
  const x = c.cast(c.tensor("input"), c.dtype("input"), c.dtype(out(c)));
  const keepdims = Number(c.value<boolean>("keepdim"));
  return axesAsInput ? c.g.op(opType, [x, c.g.ints(axes(c))], { keepdims }) : c.g.op(opType, [x], { axes: axes(c), keepdims });
};

const reduceOne = (opType: string): Emitter => (c) => {
  const dim = c.value<number | null>("dim");
  const keepdims = Number(c.value<boolean>("keepdim"));
  if (dim === null) return c.g.op(opType, [c.g.op("Reshape", [c.tensor("input"), c.g.ints([-1])])], { axis: 0, keepdims: 0 });
  return c.g.op(opType, [c.tensor("input")], { axis: axisOf(dim, c.shape("input").length), keepdims });
};

/** Element-wise on every tensor argument as one type: the output's (arithmetic) or the inputs' common one. */
function elementwise(opType: string, kind: "arithmetic" | "compare" | "logical"): Emitter {
  return (c) => {
    const type = kind === "arithmetic" ? c.dtype(out(c)) : kind === "logical" ? "bool" : comparedType(c);
    return c.g.op(opType, [c.operand("input", type), c.operand("other", type)]);
  };
}

/** The type torch compares in: a floating operand's, float32 for an integer tensor against a fraction, else the tensors'. */
function comparedType(c: EmitContext): DType {
  const operands = [c.op.args.input, c.op.args.other];
  const tensors = operands.filter(isObservedTensor).map((t) => c.dtype(t));
  const float = tensors.find(isFloat);
  if (float) return tensors.includes("float64") ? "float64" : float;
  if (operands.some((a) => typeof a === "number" && !Number.isInteger(a))) return "float32";
  return tensors.includes("int64") ? "int64" : tensors[0]!;
}

const unary = (opType: string): Emitter => (c) => c.g.op(opType, [c.tensor("input")]);
const identity: Emitter = (c) => c.g.op("Identity", [c.tensor("input")]);
const reshapeToOutput: Emitter = (c) => c.g.op("Reshape", [c.tensor("input"), c.sizes((op) => op.outputs[0]!.shape, { infer: true })]);
const splitLike: Emitter = (c) => {
  const dim = axisOf(c.value<number>("dim"), c.shape("input").length);
  const parts = c.fixed((op) => op.outputs.map((o) => o.shape[dim]!));
  return c.g.node("Split", [c.tensor("input"), c.g.ints(parts)], { axis: dim }, parts.length);
};
const pool = (opType: string): Emitter => (c) => {
  const padding = c.value<number[]>("padding");
  return c.g.op(opType, [c.tensor("input")], {
    kernel_shape: c.value<number[]>("kernelSize"),
    strides: c.value<number[]>("stride"),
    pads: [...padding, ...padding],
    ...(opType === "AveragePool" ? { count_include_pad: 1 } : {}),
  });
};

/** `weight` (one entry per channel on axis 1 of a rank-`rank` input) shaped to broadcast: [C, 1, ..., 1]. */
const perChannel = (c: EmitContext, weight: string, rank: number): string =>
  rank > 2 ? c.g.op("Unsqueeze", [weight, c.g.ints(Array.from({ length: rank - 2 }, (_, i) => i + 1))]) : weight;

const UNARY: Record<string, string> = {
  neg: "Neg", abs: "Abs", sign: "Sign", sqrt: "Sqrt", exp: "Exp", log: "Log", sin: "Sin", cos: "Cos", tanh: "Tanh",
  sigmoid: "Sigmoid", relu: "Relu", floor: "Floor", ceil: "Ceil", round: "Round", reciprocal: "Reciprocal",
  logicalNot: "Not", isnan: "IsNaN",
};
const ARITHMETIC: Record<string, string> = { add: "Add", sub: "Sub", mul: "Mul", div: "Div", pow: "Pow", maximum: "Max", minimum: "Min" };
const COMPARE: Record<string, string> = { eq: "Equal", lt: "Less", le: "LessOrEqual", gt: "Greater", ge: "GreaterOrEqual" };

const EMITTERS: Record<string, Emitter> = {
  // views and indexing
  reshape: (c) => c.g.op("Reshape", [c.tensor("input"), c.sizes((op) => op.args.shape as number[], { infer: true })]),
  view: (c) => c.g.op("Reshape", [c.tensor("input"), c.sizes((op) => op.args.shape as number[], { infer: true })]),
  flatten: reshapeToOutput,
  squeeze: (c) => {
    const shape = c.shape("input");
    const dim = c.value<number | null>("dim");
    const drop = dim === null ? shape.flatMap((s, i) => (s === 1 ? [i] : [])) : shape[axisOf(dim, shape.length)] === 1 ? [axisOf(dim, shape.length)] : [];
    return drop.length === 0 ? identity(c) : c.g.op("Squeeze", [c.tensor("input"), c.g.ints(drop)]);
  },
  unsqueeze: (c) => c.g.op("Unsqueeze", [c.tensor("input"), c.g.ints([axisOf(c.value<number>("dim"), c.shape("input").length + 1)])]),
  permute: (c) => c.g.op("Transpose", [c.tensor("input")], { perm: c.value<number[]>("dims").map((d) => axisOf(d, c.shape("input").length)) }),
  transpose: (c) => {
    const rank = c.shape("input").length;
    const perm = Array.from({ length: rank }, (_, i) => i);
    const [a, b] = [axisOf(c.value<number>("dim0"), rank), axisOf(c.value<number>("dim1"), rank)];
    [perm[a], perm[b]] = [b, a];
    return c.g.op("Transpose", [c.tensor("input")], { perm });
  },
  // torch's -1 keeps a size; Expand broadcasts, so 1 does
  expand: (c) => c.g.op("Expand", [c.tensor("input"), c.sizes((op) => (op.args.size as number[]).map((s) => (s === -1 ? 1 : s)))]),
  repeat: (c) => {
    const repeats = c.value<number[]>("repeats");
    if (repeats.length !== c.shape("input").length) throw new Unsupported("repeat with more repeats than the input has axes");
    return c.g.op("Tile", [c.tensor("input"), c.g.ints(repeats)]);
  },
  narrow: (c) => {
    const rank = c.shape("input").length;
    const dim = axisOf(c.value<number>("dim"), rank);
    const start = axisOf(c.value<number>("start"), c.shape("input")[dim]!);
    return c.g.op("Slice", [c.tensor("input"), c.g.ints([start]), c.g.ints([start + c.value<number>("length")]), c.g.ints([dim])]);
  },
  slice: (c) => {
    const [start, end] = [c.value<number | null>("start"), c.value<number | null>("end")];
    const g = c.g;
    return g.op("Slice", [c.tensor("input"), g.ints([start ?? 0]), g.ints([end ?? INT64_MAX]), g.ints([c.value<number>("dim")]), g.ints([c.value<number>("step")])]);
  },
  select: (c) => c.g.op("Gather", [c.tensor("input"), c.g.scalar(c.value<number>("index"), "int64")], { axis: c.value<number>("dim") }),
  indexSelect: (c) => c.g.op("Gather", [c.tensor("input"), c.tensor("index")], { axis: c.value<number>("dim") }),
  gather: (c) => c.g.op("GatherElements", [c.tensor("input"), c.tensor("index")], { axis: c.value<number>("dim") }),
  split: splitLike,
  chunk: splitLike,
  flip: (c) => {
    const dims = c.value<number[]>("dims");
    const g = c.g;
    return g.op("Slice", [c.tensor("input"), g.ints(dims.map(() => -1)), g.ints(dims.map(() => -INT64_MAX)), g.ints(dims), g.ints(dims.map(() => -1))]);
  },
  cat: (c) => c.g.op("Concat", c.tensors("tensors"), { axis: c.value<number>("dim") }),
  stack: (c) => {
    const dim = axisOf(c.value<number>("dim"), c.shape(out(c)).length);
    return c.g.op("Concat", c.tensors("tensors").map((t) => c.g.op("Unsqueeze", [t, c.g.ints([dim])])), { axis: dim });
  },
  contiguous: identity,
  clone: identity,
  detach: identity,
  to: (c) => c.cast(c.tensor("input"), c.dtype("input"), c.dtype(out(c))),

  // element-wise math
  ...Object.fromEntries(Object.entries(UNARY).map(([op, onnx]) => [op, unary(onnx)])),
  rsqrt: (c) => c.g.op("Reciprocal", [c.g.op("Sqrt", [c.tensor("input")])]),
  silu: (c) => c.g.op("Mul", [c.tensor("input"), c.g.op("Sigmoid", [c.tensor("input")])]),
  isfinite: (c) => c.g.op("Not", [c.g.op("Or", [c.g.op("IsNaN", [c.tensor("input")]), c.g.op("IsInf", [c.tensor("input")])])]),
  ...Object.fromEntries(Object.entries(ARITHMETIC).map(([op, onnx]) => [op, elementwise(onnx, "arithmetic")])),
  ...Object.fromEntries(Object.entries(COMPARE).map(([op, onnx]) => [op, elementwise(onnx, "compare")])),
  ne: (c) => c.g.op("Not", [elementwise("Equal", "compare")(c) as string]),
  logicalAnd: elementwise("And", "logical"),
  logicalOr: elementwise("Or", "logical"),
  // torch's remainder takes the divisor's sign: Mod for integers, a - floor(a / b) * b for floats
  remainder: (c) => {
    const type = c.dtype(out(c));
    const [a, b] = [c.operand("input", type), c.operand("other", type)];
    if (!isFloat(type)) return c.g.op("Mod", [a, b]);
    return c.g.op("Sub", [a, c.g.op("Mul", [c.g.op("Floor", [c.g.op("Div", [a, b])]), b])]);
  },
  where: (c) => {
    const type = c.dtype(out(c));
    return c.g.op("Where", [c.cast(c.tensor("condition"), c.dtype("condition"), "bool"), c.operand("input", type), c.operand("other", type)]);
  },
  clamp: (c) => {
    const type = c.dtype("input");
    const bound = (name: string) => {
      const v = c.value<number | null>(name);
      return v === null ? "" : c.g.scalar(v, type);
    };
    return c.g.op("Clip", [c.tensor("input"), bound("min"), bound("max")]);
  },
  cumsum: (c) => c.g.op("CumSum", [c.tensor("input"), c.g.scalar(c.value<number>("dim"), "int64")]),
  softmax: (c) => c.g.op("Softmax", [c.tensor("input")], { axis: c.value<number>("dim") }),
  logSoftmax: (c) => c.g.op("LogSoftmax", [c.tensor("input")], { axis: c.value<number>("dim") }),
  matmul: (c) => c.g.op("MatMul", [c.tensor("input"), c.tensor("other")]),
  bmm: (c) => c.g.op("MatMul", [c.tensor("input"), c.tensor("other")]),
  baddbmm: (c) => {
    const [beta, alpha] = [c.value<number>("beta"), c.value<number>("alpha")];
    const type = c.dtype(out(c));
    const scaled = (x: string, k: number) => (k === 1 ? x : c.g.op("Mul", [x, c.g.scalar(k, type)]));
    const product = scaled(c.g.op("MatMul", [c.tensor("batch1"), c.tensor("batch2")]), alpha);
    // beta 0 ignores the input (NaNs included), as libtorch does
    return beta === 0 ? product : c.g.op("Add", [scaled(c.tensor("input"), beta), product]);
  },

  // reductions (ReduceSum takes its axes as an input from opset 13, the others from opset 18)
  sum: reduce("ReduceSum", true),
  mean: reduce("ReduceMean", false),
  max: reduce("ReduceMax", false),
  min: reduce("ReduceMin", false),
  argmax: reduceOne("ArgMax"),
  argmin: reduceOne("ArgMin"),

  // torch.nn.functional
  conv2d: (c) => {
    const [padding, bias] = [c.value<number[]>("padding"), c.optional("bias")];
    return c.g.op("Conv", [c.tensor("input"), c.tensor("weight"), ...(bias === null ? [] : [bias])], {
      kernel_shape: c.shape("weight").slice(2),
      strides: c.value<number[]>("stride"),
      pads: [...padding, ...padding],
      dilations: c.value<number[]>("dilation"),
      group: c.value<number>("groups"),
    });
  },
  linear: (c) => {
    const bias = c.optional("bias");
    const product = c.g.op("MatMul", [c.tensor("input"), c.g.op("Transpose", [c.tensor("weight")], { perm: [1, 0] })]);
    return bias === null ? product : c.g.op("Add", [product, bias]);
  },
  conv1x1: (c) => {
    const [outChannels, inChannels] = c.shape("weight") as [number, number];
    const kernel = c.g.op("Reshape", [c.tensor("weight"), c.g.ints([outChannels, inChannels, 1, 1])]);
    const bias = c.optional("bias");
    return c.g.op("Conv", [c.tensor("input"), kernel, ...(bias === null ? [] : [bias])], { kernel_shape: [1, 1] });
  },
  groupNorm: (c) => {
    const x = c.tensor("input");
    const [groups, type, rank] = [c.value<number>("numGroups"), c.dtype("input"), c.shape("input").length];
    const grouped = c.g.op("Reshape", [x, c.g.ints([0, groups, -1])]);
    const unit = [c.g.filled(type, [groups], 1), c.g.filled(type, [groups], 0)];
    const normalised = c.g.op("InstanceNormalization", [grouped, ...unit], { epsilon: { float: c.value<number>("eps") } });
    let y = c.g.op("Reshape", [normalised, c.g.op("Shape", [x])]);
    const [weight, bias] = [c.optional("weight"), c.optional("bias")];
    if (weight !== null) y = c.g.op("Mul", [y, perChannel(c, weight, rank)]);
    if (bias !== null) y = c.g.op("Add", [y, perChannel(c, bias, rank)]);
    return y;
  },
  layerNorm: (c) => {
    const shape = c.value<number[]>("normalizedShape");
    const weight = c.optional("weight") ?? c.g.filled(c.dtype("input"), shape, 1);
    const bias = c.optional("bias");
    return c.g.op("LayerNormalization", [c.tensor("input"), weight, ...(bias === null ? [] : [bias])], { axis: -shape.length, epsilon: { float: c.value<number>("eps") } });
  },
  batchNorm: (c) => {
    if (c.value<boolean>("training")) throw new Unsupported("batch norm in training mode: export the model in eval mode");
    const [mean, variance] = [c.optional("runningMean"), c.optional("runningVar")];
    if (mean === null || variance === null) throw new Unsupported("batch norm without running statistics");
    const channels = c.shape("input")[1]!;
    const type = c.dtype("input");
    const weight = c.optional("weight") ?? c.g.filled(type, [channels], 1);
    const bias = c.optional("bias") ?? c.g.filled(type, [channels], 0);
    return c.g.op("BatchNormalization", [c.tensor("input"), weight, bias, mean, variance], { epsilon: { float: c.value<number>("eps") } });
  },
  // torch's nearest: source index floor(dst * in / out)
  interpolateNearest: (c) => {
    const scales = c.fixed((op) => {
      const [input, output] = [(op.args.input as ObservedTensor).shape, op.outputs[0]!.shape];
      return output.map((s, i) => (i < 2 ? 1 : s / input[i]!));
    });
    return c.g.op("Resize", [c.tensor("input"), "", c.g.constant("float32", [scales.length], Float32Array.from(scales))], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  },
  avgPool2d: pool("AveragePool"),
  maxPool2d: pool("MaxPool"),
  adaptiveAvgPool2d: (c) => {
    const [input, output] = [c.shape("input").slice(-2), c.value<number[]>("outputSize")];
    if (output.every((s) => s === 1)) return c.g.op("GlobalAveragePool", [c.tensor("input")]);
    if (input.some((s, i) => s % output[i]! !== 0)) throw new Unsupported(`adaptive pooling from ${input.join("x")} to ${output.join("x")} (not a whole kernel)`);
    const kernel = input.map((s, i) => s / output[i]!);
    return c.g.op("AveragePool", [c.tensor("input")], { kernel_shape: kernel, strides: kernel });
  },
  // torch lists (begin, end) pairs from the last axis back; ONNX all begins, then all ends
  pad: (c) => {
    const pad = c.value<number[]>("pad");
    const rank = c.shape("input").length;
    const [begin, end] = [new Array<number>(rank).fill(0), new Array<number>(rank).fill(0)];
    for (let i = 0; i < pad.length / 2; i++) [begin[rank - 1 - i], end[rank - 1 - i]] = [pad[2 * i]!, pad[2 * i + 1]!];
    const mode = { constant: "constant", reflect: "reflect", replicate: "edge" }[c.value<string>("mode")];
    if (mode === undefined) throw new Unsupported(`pad mode ${c.value<string>("mode")}`);
    return c.g.op("Pad", [c.tensor("input"), c.g.ints([...begin, ...end]), c.g.scalar(c.value<number>("value"), c.dtype("input"))], { mode });
  },
  dropout: (c) => {
    if (c.value<boolean>("training") && c.value<number>("p") > 0) throw new Unsupported("dropout in training mode: export the model in eval mode");
    return identity(c);
  },
};

/** The ONNX emitter of each exportable op, by the op's name in OP_RULES. */
export const ONNX_EMITTERS: ReadonlyMap<string, Emitter> = new Map(Object.entries(EMITTERS));
