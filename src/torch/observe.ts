// Op observation for tracing: while observeOps(fn) runs, every tensor op the addon executes is
// reported with its arguments, tensors given as {handle, shape}. The pruning layer builds its
// dependency graph from this record, so any model code is traced without per-model hooks.
import { native, type Handle } from "./native.js";

/** A tensor as an observer sees it: its handle (unique for the tensor's lifetime) and shape. */
export interface ObservedTensor {
  handle: Handle;
  shape: number[];
}

/** One executed op: the native op name, its arguments (tensors as ObservedTensor) and outputs. */
export interface ObservedOp {
  op: string;
  args: unknown[];
  outputs: ObservedTensor[];
}

// Argument kinds per position: t = a tensor (or null), l = a list of tensors, m = a tensor or a
// scalar as told by the scalar mask in the last argument, _ = anything else. Ops not listed take
// one tensor first ("t").
const BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "remainder", "eq", "ne", "lt", "le", "gt", "ge", "logicalAnd", "logicalOr", "matmul", "bmm"];
const SIGNATURES: Record<string, string> = {
  ...Object.fromEntries(BINARY.map((op) => [op, "mm_"])),
  where: "tmm_",
  baddbmm: "ttt",
  cat: "l",
  stack: "l",
  indexSelect: "t_t",
  gather: "t_t",
  conv2d: "ttt",
  linear: "ttt",
  groupNorm: "t_tt",
  layerNorm: "t_tt",
  batchNorm: "ttttt",
  mseLoss: "tt",
  crossEntropy: "tt",
  copy_: "tt",
  add_: "tm",
  mul_: "tm",
};

// Functions that are not tensor ops (metadata, lifetime, autograd bookkeeping, optimizer kernels)
// or that create tensors from nothing: not reported.
const NOT_OPS = new Set([
  "torchVersion", "dispose", "disposeMany", "isDisposed", "memory", "shape", "dtype", "device", "isContiguous",
  "setNumThreads", "getNumThreads", "manualSeed", "cudaDeviceCount", "cudaSynchronize", "toBuffer", "item", "equal",
  "requiresGrad", "setRequiresGrad", "isLeaf", "retainGrad", "backward", "grad", "setGrad", "zeroGrad",
  "setGradEnabled", "isGradEnabled", "adamwStep", "clipGradNorm", "emaUpdate",
  "empty", "zeros", "ones", "full", "arange", "linspace", "rand", "randn", "randint", "randperm", "fromBuffer",
]);

const observed = (handle: Handle): ObservedTensor => ({ handle, shape: native.shape(handle) });

function describeArgs(op: string, args: unknown[]): unknown[] {
  const signature = SIGNATURES[op] ?? "t";
  const mask = signature.includes("m") ? Number(args[args.length - 1]) : 0;
  let operand = 0;
  return args.map((a, i) => {
    const kind = signature[i];
    if (kind === "t") return typeof a === "number" ? observed(a) : a;
    if (kind === "l") return (a as Handle[]).map(observed);
    if (kind === "m") {
      // add_/mul_ end with a boolean "is scalar" flag, which reads as the same one-bit mask.
      const isScalar = (mask >> operand++) & 1;
      return isScalar || typeof a !== "number" ? a : observed(a);
    }
    return a;
  });
}

/**
 * Runs `fn` and reports each tensor op it executes to `onOp`, in order. Not reentrant; the
 * observation ends when `fn` returns or throws.
 */
export function observeOps<T>(onOp: (op: ObservedOp) => void, fn: () => T): T {
  const table = native as unknown as Record<string, unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, value] of Object.entries(table)) {
    if (typeof value !== "function" || NOT_OPS.has(name)) continue;
    const original = value as (...args: unknown[]) => unknown;
    originals.set(name, original);
    table[name] = (...args: unknown[]) => {
      const result = original(...args);
      const outputs = Array.isArray(result) ? (result as Handle[]) : typeof result === "number" ? [result] : [];
      onOp({ op: name, args: describeArgs(name, args), outputs: outputs.map(observed) });
      return result;
    };
  }
  if (originals.size === 0 || table.conv2d === originals.get("conv2d")) throw new Error("observeOps: the op table could not be wrapped");
  try {
    return fn();
  } finally {
    for (const [name, original] of originals) table[name] = original;
  }
}
