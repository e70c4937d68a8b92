// The dependency graph, built from one traced forward (as Torch-Pruning's DepGraph): each op
// passes the channel elements of its inputs to its outputs, joins the elements that must stay
// aligned (the two sides of an add, a conv's input and its in-channels, a norm and its input) and
// shifts them through concatenation. Nothing here knows a UNet: the rules are per op.
import * as torch from "../torch/index.js";
import type { ObservedOp, ObservedTensor, Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import { ChannelSets, type Layout } from "./channels.js";

/** One prunable dimension of a parameter or buffer: the element of each index along `dim`. */
export interface Slot {
  tensor: string;
  dim: number;
  ids: number[];
}

/** A conv or linear layer seen in the trace; its output channels can root a pruning group. */
export interface Layer {
  /** The module path ("down_blocks.0.resnets.0.conv1"). */
  name: string;
  kind: "conv" | "linear";
  weight: string;
  /** Slot of the weight's output dim (and of the bias). */
  out: Slot;
  /** Slot of the weight's input dim; null for a depthwise conv (its input is its output). */
  in: Slot | null;
  /** A depthwise conv whose `groups` must follow its channel count. */
  depthwise: boolean;
}

/** A normalisation whose channels split into `groups` equal groups (GroupNorm). */
export interface NormConstraint {
  name: string;
  groups: number;
  ids: number[];
}

const ELEMENTWISE_UNARY = new Set([
  "neg", "abs", "sign", "sqrt", "rsqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "silu", "relu", "floor", "ceil",
  "round", "reciprocal", "logicalNot", "isnan", "isfinite", "clamp", "dropout", "softmax", "logSoftmax", "cumsum",
  "cumprod", "contiguous", "clone", "to", "detach",
]);
const ELEMENTWISE_BINARY = new Set(["add", "sub", "mul", "div", "pow", "maximum", "minimum", "remainder", "eq", "ne", "lt", "le", "gt", "ge", "logicalAnd", "logicalOr", "where", "add_", "mul_", "copy_"]);
const REDUCTIONS = new Set(["sum", "mean", "var", "std", "norm", "max", "min", "argmax", "argmin"]);
const SPATIAL = new Set(["interpolateNearest", "avgPool2d", "maxPool2d", "adaptiveAvgPool2d"]);
const LOSSES = new Set(["mseLoss", "crossEntropy"]);

/** Ops that are a module's forward, with the argument position of the module's weight. */
const MODULE_OPS = new Map([["conv2d", 1], ["linear", 1], ["groupNorm", 2], ["layerNorm", 2], ["batchNorm", 3]]);

/** One op as autograd would see it: its module (a layer with a named weight) or null, and its tensors. */
interface TapeEntry {
  module: string | null;
  inputs: number[];
  outputs: number[];
}

/**
 * Torch-Pruning 1.3.7's node order (`DependencyGraph._trace_computational_graph`): from each
 * output, a depth-first walk with a stack over autograd's graph. A node is created when its
 * consumer is taken off the stack, its inputs in argument order (autograd's next_functions
 * order), then the inputs are pushed, so the last input is walked first. The module nodes, in
 * the order they were created, give the order of `get_all_groups`.
 */
export function autogradOrder(tape: readonly TapeEntry[], outputs: readonly number[]): string[] {
  const producer = new Map<number, number>();
  tape.forEach((e, i) => e.outputs.forEach((h) => producer.set(h, i)));
  const created = new Set<number>();
  const order: string[] = [];
  const create = (i: number): void => {
    if (created.has(i)) return;
    created.add(i);
    const m = tape[i]!.module;
    if (m !== null && !order.includes(m)) order.push(m);
  };
  const visited = new Set<number>();
  for (const h of outputs) {
    const root = producer.get(h);
    if (root === undefined) continue;
    create(root);
    const stack = [root];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (visited.has(i)) continue;
      for (const h of tape[i]!.inputs) {
        const j = producer.get(h);
        if (j === undefined) continue;
        create(j);
        stack.push(j);
      }
      visited.add(i);
    }
  }
  return order;
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
const normDim = (d: number, ndim: number): number => (d < 0 ? d + ndim : d);
const isTensor = (a: unknown): a is ObservedTensor => typeof a === "object" && a !== null && "handle" in a;
const parentPath = (name: string): string => name.slice(0, Math.max(0, name.lastIndexOf(".")));

export class DependencyGraph {
  readonly sets = new ChannelSets();
  /** Every prunable dimension, in the order the trace met them. */
  readonly slots: Slot[] = [];
  /** Conv and linear layers in the order the forward first used them. */
  readonly layers: Layer[] = [];
  readonly norms: NormConstraint[] = [];
  /** Head counts of reshapes that split channels into heads, by element. */
  readonly headSplits = new Map<number, number>();
  /**
   * Module paths in Torch-Pruning's node order (its `module2node`): the order in which a
   * depth-first walk of the autograd graph from the outputs first meets each module. Groups are
   * visited in this order (see `autogradOrder`).
   */
  moduleOrder: string[] = [];
  readonly #tape: TapeEntry[] = [];
  readonly #slotByKey = new Map<string, Slot>();
  readonly #layerByWeight = new Map<string, Layer>();
  readonly #layouts = new Map<number, Layout>();
  readonly #names: Map<number, string>;
  /** Traced tensors that depend on a parameter (those autograd would record). */
  readonly #carriesGrad = new Set<number>();
  readonly module: Module;

  private constructor(module: Module) {
    this.module = module;
    this.#names = new Map<number, string>();
    for (const [name, p] of module.namedParameters()) this.#names.set(p.handle, name);
    for (const [name, b] of module.namedBuffers()) this.#names.set(b.handle, name);
  }

  /**
   * Traces `forward` (one call of the model on example inputs, without gradients) and builds the
   * graph. The channels of what `forward` returns keep their meaning: they are never pruned.
   */
  static build(module: Module, forward: () => Tensor | Tensor[]): DependencyGraph {
    const graph = new DependencyGraph(module);
    torch.noGrad(() =>
      torch.tidy(() => {
        const out = torch.observeOps((op) => {
          graph.#record(op);
          graph.#visit(op);
        }, forward);
        const outputs = Array.isArray(out) ? out : [out];
        for (const t of outputs) {
          const layout = graph.#layouts.get(t.handle);
          if (layout) graph.sets.freeze(layout.ids);
        }
        graph.moduleOrder = autogradOrder(graph.#tape, outputs.map((t) => t.handle));
      }),
    );
    graph.#layouts.clear();
    graph.#tape.length = 0;
    return graph;
  }

  /**
   * Notes the op on the tape that autogradOrder walks: its tensor inputs that carry gradients (the
   * parameters excluded, as autograd's AccumulateGrad leaves are) and, for a layer with a named
   * weight, its module.
   */
  #record(op: ObservedOp): void {
    const tensors = op.args.flatMap((a) => (Array.isArray(a) ? a : [a])).filter(isTensor);
    const params = tensors.filter((t) => this.#names.has(t.handle));
    const inputs = tensors.filter((t) => !this.#names.has(t.handle) && this.#carriesGrad.has(t.handle)).map((t) => t.handle);
    if (inputs.length === 0 && params.length === 0) return;
    const weight = MODULE_OPS.has(op.op) && isTensor(op.args[MODULE_OPS.get(op.op)!]) ? this.#names.get((op.args[MODULE_OPS.get(op.op)!] as ObservedTensor).handle) : undefined;
    for (const o of op.outputs) this.#carriesGrad.add(o.handle);
    this.#tape.push({ module: weight === undefined ? null : parentPath(weight), inputs, outputs: op.outputs.map((o) => o.handle) });
  }

  layer(name: string): Layer | undefined {
    return this.layers.find((l) => l.name === name);
  }

  // ---- building blocks of the rules ----

  #slot(tensor: string, dim: number, size: number): Slot {
    const key = `${tensor}:${dim}`;
    let slot = this.#slotByKey.get(key);
    if (!slot) {
      slot = { tensor, dim, ids: this.sets.fresh(size) };
      this.#slotByKey.set(key, slot);
      this.slots.push(slot);
    }
    return slot;
  }

  #layout(t: unknown): Layout | undefined {
    return isTensor(t) ? this.#layouts.get(t.handle) : undefined;
  }

  #set(t: ObservedTensor | undefined, layout: Layout | undefined): void {
    if (t && layout) this.#layouts.set(t.handle, layout);
  }

  #freezeInputs(op: ObservedOp): void {
    for (const a of op.args) {
      for (const t of Array.isArray(a) ? a : [a]) {
        const layout = this.#layout(t);
        if (layout) this.sets.freeze(layout.ids);
      }
    }
  }

  /** The elements of `x`'s channels when they sit on `axis` (or are mixed) and number `size`. */
  #channelsAt(x: unknown, axis: number, size: number): number[] | null {
    const layout = this.#layout(x);
    if (!layout) return null;
    if ((layout.axis === axis || layout.axis === null) && layout.ids.length === size) return layout.ids;
    this.sets.freeze(layout.ids);
    return null;
  }

  // ---- the rules, per op ----

  #visit(op: ObservedOp): void {
    const { op: name, args, outputs } = op;
    const [x] = args;
    const out = outputs[0];
    const layout = this.#layout(x);
    if (name === "conv2d" || name === "linear") return this.#layerOp(op);
    if (name === "groupNorm" || name === "layerNorm" || name === "batchNorm") return this.#norm(op);
    if (ELEMENTWISE_UNARY.has(name)) return this.#set(out, layout);
    if (ELEMENTWISE_BINARY.has(name)) return this.#elementwise(op);
    if (name === "matmul" || name === "bmm") return this.#matmul(args[0], args[1], out);
    if (name === "baddbmm") {
      this.#matmul(args[1], args[2], out);
      return this.#elementwiseOf([args[0] as ObservedTensor, out!], out);
    }
    if (LOSSES.has(name)) return;
    if (name === "cat" || name === "stack") return this.#join(name, args[0] as ObservedTensor[], args[1] as number, out!);
    if (!layout) return; // the rules below move channels that x does not have
    if (!isTensor(x) || !out) return this.#freezeInputs(op);
    const ndim = x.shape.length;
    switch (name) {
      case "reshape":
      case "view":
      case "flatten":
      case "squeeze":
        return this.#set(out, this.#reshape(layout, x.shape, out.shape));
      case "unsqueeze": {
        const d = normDim(args[1] as number, out.shape.length);
        return this.#set(out, { ...layout, axis: layout.axis === null ? null : layout.axis >= d ? layout.axis + 1 : layout.axis });
      }
      case "permute":
        return this.#set(out, { ...layout, axis: layout.axis === null ? null : (args[1] as number[]).map((d) => normDim(d, ndim)).indexOf(layout.axis) });
      case "transpose": {
        const [d0, d1] = [normDim(args[1] as number, ndim), normDim(args[2] as number, ndim)];
        const a = layout.axis;
        return this.#set(out, { ...layout, axis: a === d0 ? d1 : a === d1 ? d0 : a });
      }
      case "expand":
      case "repeat": {
        const axis = layout.axis === null ? null : layout.axis + out.shape.length - ndim;
        if (axis === null || out.shape[axis] !== layout.ids.length) return this.#freezeInputs(op);
        return this.#set(out, { ...layout, axis });
      }
      case "narrow":
      case "slice":
      case "select":
      case "indexSelect":
      case "gather":
      case "split":
      case "chunk":
      case "sort":
      case "argsort":
      case "topk":
      case "flip": {
        const dims = name === "flip" ? (args[1] as number[]) : [(name === "split" || name === "chunk" ? args[2] : name === "topk" ? args[2] : args[1]) as number];
        if (layout.axis === null || dims.some((d) => normDim(d, ndim) === layout.axis)) return this.#freezeInputs(op);
        const axis = name === "select" && normDim(args[1] as number, ndim) < layout.axis ? layout.axis - 1 : layout.axis;
        for (const o of outputs) this.#set(o, { ...layout, axis });
        return;
      }
      case "pad": {
        const padded = (args[1] as number[]).length / 2;
        if (layout.axis === null || layout.axis >= ndim - padded) return this.#freezeInputs(op);
        return this.#set(out, layout);
      }
      default:
        if (SPATIAL.has(name)) {
          if (layout.axis === null || layout.axis >= ndim - 2) return this.#freezeInputs(op);
          return this.#set(out, layout);
        }
        if (REDUCTIONS.has(name)) return this.#set(out, this.#reduce(name, args, layout, ndim));
        return this.#freezeInputs(op);
    }
  }

  #layerOp(op: ObservedOp): void {
    const [x, w, b] = op.args as [ObservedTensor, ObservedTensor, ObservedTensor | null];
    const weight = this.#names.get(w.handle);
    const out = op.outputs[0]!;
    if (weight === undefined) {
      // A weight computed inside the forward: its channels cannot be pruned through a parameter.
      return this.#freezeInputs(op);
    }
    const kind = op.op === "conv2d" ? "conv" : "linear";
    const outSlot = this.#slot(weight, 0, w.shape[0]!);
    const bias = b ? this.#names.get(b.handle) : undefined;
    if (b && bias !== undefined) this.sets.unionAll(this.#slot(bias, 0, b.shape[0]!).ids, outSlot.ids);
    else if (b) this.sets.freeze(outSlot.ids);
    const groups = kind === "conv" ? (op.args[6] as number) : 1;
    const channelAxis = kind === "conv" ? 1 : x.shape.length - 1;
    const inChannels = kind === "conv" ? x.shape[1]! : x.shape[x.shape.length - 1]!;
    let inSlot: Slot | null = null;
    let depthwise = false;
    if (groups === 1) {
      inSlot = this.#slot(weight, 1, w.shape[1]!);
      const ids = this.#channelsAt(x, channelAxis, inChannels);
      if (ids) this.sets.unionAll(ids, inSlot.ids);
    } else if (w.shape[1] === 1 && groups === inChannels && w.shape[0] === inChannels) {
      depthwise = true;
      const ids = this.#channelsAt(x, channelAxis, inChannels);
      if (ids) this.sets.unionAll(ids, outSlot.ids);
    } else {
      this.#freezeInputs(op);
      this.sets.freeze(outSlot.ids);
    }
    if (!this.#layerByWeight.has(weight)) {
      const layer: Layer = { name: parentPath(weight), kind, weight, out: outSlot, in: inSlot, depthwise };
      this.#layerByWeight.set(weight, layer);
      this.layers.push(layer);
    }
    this.#set(out, { axis: kind === "conv" ? 1 : out.shape.length - 1, ids: outSlot.ids });
  }

  #norm(op: ObservedOp): void {
    const [x] = op.args as [ObservedTensor];
    const layout = this.#layout(x);
    const out = op.outputs[0];
    if (!layout) return;
    const params = (op.op === "batchNorm" ? op.args.slice(1, 5) : op.args.slice(2, 4)).filter(isTensor);
    if (op.op === "layerNorm" && ((op.args[1] as number[]).length !== 1 || (layout.axis !== null && layout.axis !== x.shape.length - 1))) {
      return this.#freezeInputs(op);
    }
    const ids = this.#channelsAt(x, op.op === "layerNorm" ? x.shape.length - 1 : 1, op.op === "layerNorm" ? x.shape[x.shape.length - 1]! : x.shape[1]!);
    if (!ids) return this.#freezeInputs(op);
    for (const p of params) {
      const name = this.#names.get(p.handle);
      if (name === undefined) this.sets.freeze(ids);
      else this.sets.unionAll(this.#slot(name, 0, p.shape[0]!).ids, ids);
    }
    if (op.op === "groupNorm") {
      const owner = params.length > 0 ? parentPath(this.#names.get(params[0]!.handle) ?? "") : "";
      this.norms.push({ name: owner || `group_norm#${this.norms.length}`, groups: op.args[1] as number, ids });
    }
    this.#set(out, layout);
  }

  /** Broadcasting element-wise ops: channels aligned from the right are the same channels. */
  #elementwise(op: ObservedOp): void {
    const operands = (op.op === "where" ? op.args.slice(0, 3) : op.args.slice(0, 2)).filter(isTensor);
    this.#elementwiseOf(operands, op.outputs[0]);
  }

  #elementwiseOf(operands: ObservedTensor[], out: ObservedTensor | undefined): void {
    if (!out) return;
    const ndim = out.shape.length;
    let result: Layout | undefined;
    const fromRight = (t: ObservedTensor, l: Layout) => (l.axis === null ? null : t.shape.length - l.axis);
    for (const t of operands) {
      const layout = this.#layout(t);
      if (!layout) continue;
      if (!result) {
        const r = fromRight(t, layout);
        result = { axis: r === null ? null : ndim - r, ids: layout.ids };
        continue;
      }
      const same = layout.ids.length === result.ids.length;
      const r = fromRight(t, layout);
      const aligned = r === null || result.axis === null || ndim - r === result.axis;
      if (same && aligned) {
        this.sets.unionAll(result.ids, layout.ids);
        if (result.axis === null && r !== null) result = { axis: ndim - r, ids: result.ids };
      } else {
        this.sets.freeze(layout.ids);
        this.sets.freeze(result.ids);
      }
    }
    if (!result) return;
    // A parameter (or buffer) broadcast against channels, e.g. a learned per-channel scale.
    for (const t of operands) {
      const name = this.#names.get(t.handle);
      if (name === undefined || this.#layout(t) || result.axis === null) continue;
      const dim = t.shape.length - (ndim - result.axis);
      if (dim >= 0 && t.shape[dim] === result.ids.length) this.sets.unionAll(this.#slot(name, dim, result.ids.length).ids, result.ids);
    }
    this.#set(out, result);
  }

  /**
   * Matrix products. As Torch-Pruning's trace does, the attention matmuls count as channel
   * preserving: q, k and v (and the output projection's input) end in one group.
   */
  #matmul(a: unknown, b: unknown, out: ObservedTensor | undefined): void {
    const la = this.#layout(a);
    const lb = this.#layout(b);
    if (!out || (!la && !lb)) return;
    const ta = a as ObservedTensor;
    const tb = b as ObservedTensor;
    const last = out.shape.length - 1;
    if (la && lb) {
      if (la.ids.length !== lb.ids.length) {
        this.sets.freeze(la.ids);
        this.sets.freeze(lb.ids);
        return;
      }
      this.sets.unionAll(la.ids, lb.ids);
      if (lb.axis === tb.shape.length - 1) return this.#set(out, { axis: last, ids: lb.ids });
      if (la.axis === ta.shape.length - 2) return this.#set(out, { axis: last - 1, ids: la.ids });
      return this.#set(out, { axis: null, ids: la.ids });
    }
    // One side only: channels survive as rows of a or columns of b; contracted away, they would
    // need the other operand (not a parameter we can slice) to shrink with them.
    if (la && la.axis === ta.shape.length - 2) return this.#set(out, { axis: last - 1, ids: la.ids });
    if (lb && lb.axis === tb.shape.length - 1) return this.#set(out, { axis: last, ids: lb.ids });
    this.sets.freeze((la ?? lb)!.ids);
  }

  #join(name: string, tensors: ObservedTensor[], dim: number, out: ObservedTensor): void {
    const layouts = tensors.map((t) => this.#layout(t));
    if (layouts.every((l) => !l)) return;
    const ndim = tensors[0]!.shape.length;
    const d = normDim(dim, name === "stack" ? ndim + 1 : ndim);
    if (name === "cat" && layouts.every((l) => !l || l.axis === d)) {
      // Concatenation along the channels: the output's channels are the inputs' in order.
      const ids = tensors.flatMap((t, i) => layouts[i]?.ids ?? this.sets.fresh(t.shape[d]!));
      return this.#set(out, { axis: d, ids });
    }
    const present = layouts.filter((l): l is Layout => l !== undefined);
    const first = present[0]!;
    for (const l of present.slice(1)) {
      if (l.ids.length === first.ids.length && l.axis === first.axis) this.sets.unionAll(first.ids, l.ids);
      else {
        this.sets.freeze(l.ids);
        this.sets.freeze(first.ids);
        return;
      }
    }
    if (first.axis === null || (name === "cat" && first.axis === d)) return this.#set(out, first);
    this.#set(out, { ...first, axis: name === "stack" && d <= first.axis ? first.axis + 1 : first.axis });
  }

  /**
   * Reshapes keep channels where the dims before them keep their product. A channel axis split in
   * two (heads x head dim) gives channel groups; merged with the dims after it (a flatten before
   * a linear layer), each channel spans a block of the merged axis.
   */
  #reshape(layout: Layout, inShape: readonly number[], outShape: readonly number[]): Layout {
    if (layout.axis === null) return layout;
    const c = layout.ids.length;
    const before = prod(inShape.slice(0, layout.axis));
    for (let p = 0, acc = 1; p < outShape.length; acc *= outShape[p]!, p++) {
      if (acc !== before) continue;
      if (outShape[p] === c) return { axis: p, ids: layout.ids };
      if (p + 1 < outShape.length && outShape[p]! > 1 && outShape[p]! * outShape[p + 1]! === c) {
        const heads = outShape[p]!;
        for (const id of layout.ids) this.headSplits.set(id, heads);
        return { axis: null, ids: layout.ids };
      }
      for (let q = layout.axis + 1, span = 1; q < inShape.length; q++) {
        span *= inShape[q]!;
        if (outShape[p] === c * span) return { axis: p, ids: layout.ids.flatMap((id) => new Array<number>(span).fill(id)) };
      }
    }
    return { axis: null, ids: layout.ids };
  }

  #reduce(name: string, args: unknown[], layout: Layout, ndim: number): Layout | undefined {
    // sum/mean(t, dims, keepdim), var/std(t, dims, correction, keepdim), norm(t, p, dims, keepdim), max/min/argmax/argmin(t, dim, keepdim)
    const raw = name === "norm" ? args[2] : args[1];
    if (raw === null || raw === undefined || layout.axis === null) return undefined;
    const dims = (Array.isArray(raw) ? (raw as number[]) : [raw as number]).map((d) => normDim(d, ndim));
    if (dims.includes(layout.axis)) return undefined;
    const keepdim = name === "var" || name === "std" || name === "norm" ? args[3] : args[2];
    const axis = keepdim ? layout.axis : layout.axis - dims.filter((d) => d < layout.axis!).length;
    return { axis, ids: layout.ids };
  }
}
