// Op observation for tracing: while observeOps(fn) runs, every tensor op the addon executes is
// reported with its arguments named by its rule (op-rules.ts), tensors given as {handle, shape}.
// The pruning layer builds its dependency graph from this record, so any model code is traced
// without per-model hooks.
import { native, type Handle } from "./native.js";
import type { DType } from "./dtype.js";
import { NOT_OPS, OP_RULES, type OpRule } from "./op-rules.js";

/** A tensor as an observer sees it: its handle (unique for the tensor's lifetime) and shape. */
export interface ObservedTensor {
  handle: Handle;
  shape: number[];
}

/** An op's arguments by the names of its rule (OP_RULES), in the addon's order; tensors as ObservedTensor. */
export type ObservedArgs = Readonly<Record<string, unknown>>;

/** One executed op: the native op name, its arguments and its outputs. */
export interface ObservedOp {
  op: string;
  args: ObservedArgs;
  outputs: ObservedTensor[];
}

export const isObservedTensor = (a: unknown): a is ObservedTensor => typeof a === "object" && a !== null && "handle" in a;

/** An observed tensor's dtype; valid while the tensor lives (inside the observed call). */
export const observedDType = (t: ObservedTensor): DType => native.dtype(t.handle) as DType;

/** An observed tensor's contents as bytes (contiguous, native byte order), for constants a tracer keeps. */
export const observedBytes = (t: ObservedTensor): Uint8Array => new Uint8Array(native.toBuffer(t.handle));

const observed = (handle: Handle): ObservedTensor => ({ handle, shape: native.shape(handle) });

// An op without a rule is taken to have one tensor first; arguments past a rule's are named by position.
const UNKNOWN: OpRule["args"] = { input: "tensor" };

function describeArgs(op: string, args: unknown[]): ObservedArgs {
  const kinds = Object.entries(OP_RULES.get(op)?.args ?? UNKNOWN);
  // Ops with operands end with their scalar mask; add_/mul_ end with a boolean "is scalar" flag,
  // which reads as the same one-bit mask.
  const mask = kinds.some(([, kind]) => kind === "operand") ? Number(args[args.length - 1]) : 0;
  let operand = 0;
  return Object.fromEntries(
    args.map((a, i) => {
      const [name = `arg${i}`, kind = "value"] = kinds[i] ?? [];
      if (kind === "tensor") return [name, typeof a === "number" ? observed(a) : a];
      if (kind === "tensors") return [name, (a as Handle[]).map(observed)];
      if (kind === "operand") {
        const isScalar = (mask >> operand++) & 1;
        return [name, isScalar || typeof a !== "number" ? a : observed(a)];
      }
      return [name, a];
    }),
  );
}

/**
 * Runs `fn` and reports each tensor op it executes to `onOp`, in order. Not reentrant; the
 * observation ends when `fn` returns or throws.
 */
let observing = false;

/**
 * Whether an observeOps call is running: a layer whose fast path differs from the op sequence a
 * tracer must see (Attention) runs the traced sequence then.
 */
export const isObserving = (): boolean => observing;

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
  observing = true;
  try {
    return fn();
  } finally {
    observing = false;
    for (const [name, original] of originals) table[name] = original;
  }
}
