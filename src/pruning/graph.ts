// The dependency graph, built from one traced forward (as Torch-Pruning's DepGraph): each op
// passes the channel elements of its inputs to its outputs, joins the elements that must stay
// aligned (the two sides of an add, a conv's input and its in-channels, a norm and its input) and
// shifts them through concatenation. Nothing here knows a UNet or an op by name: each op's rule
// (OP_RULES) names its arguments and says which kind of coupling below applies.
import * as torch from "../torch/index.js";
import { isObservedTensor as isTensor, OP_RULES, type Coupling, type ObservedOp, type ObservedTensor, type Tensor } from "../torch/index.js";
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
const FREEZE: Coupling = { kind: "freeze" };

/** The module path that owns a parameter, buffer or submodule path ("a.b.weight" -> "a.b"; "w" -> ""). */
export const parentPath = (name: string): string => name.slice(0, Math.max(0, name.lastIndexOf(".")));

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
    const tensors = Object.values(op.args).flatMap((a) => (Array.isArray(a) ? a : [a])).filter(isTensor);
    const params = tensors.filter((t) => this.#names.has(t.handle));
    const inputs = tensors.filter((t) => !this.#names.has(t.handle) && this.#carriesGrad.has(t.handle)).map((t) => t.handle);
    if (inputs.length === 0 && params.length === 0) return;
    const module = OP_RULES.get(op.op)?.module;
    const w = module === undefined ? undefined : op.args[module];
    const weight = isTensor(w) ? this.#names.get(w.handle) : undefined;
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
    for (const a of Object.values(op.args)) {
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

  // ---- the rules, per kind of coupling ----

  #visit(op: ObservedOp): void {
    const channels = OP_RULES.get(op.op)?.channels ?? FREEZE;
    const { args, outputs } = op;
    const out = outputs[0];
    switch (channels.kind) {
      case "layer":
        return this.#layerOp(op, channels);
      case "norm":
        return this.#norm(op, channels.axis);
      case "same":
        return this.#set(out, this.#layout(args.input));
      case "elementwise":
        return this.#elementwiseOf(Object.values(args).filter(isTensor), out);
      case "matmul":
        return this.#matmul(args.input, args.other, out);
      case "baddbmm":
        this.#matmul(args.batch1, args.batch2, out);
        return this.#elementwiseOf([args.input as ObservedTensor, out!], out);
      case "join":
        return this.#join(args.tensors as ObservedTensor[], args.dim as number, channels.newAxis, out!);
      case "loss":
        return;
      case "freeze":
        return this.#freezeInputs(op);
    }
    // The kinds below move the channels of `input`: without channels there is nothing to move.
    const x = args.input;
    const layout = this.#layout(x) ?? (channels.kind === "index" ? this.#lookupTable(x, args.dim) : undefined);
    if (!layout) return;
    if (!isTensor(x) || !out) return this.#freezeInputs(op);
    const ndim = x.shape.length;
    switch (channels.kind) {
      case "reshape":
        return this.#set(out, this.#reshape(layout, x.shape, out.shape));
      case "unsqueeze": {
        const d = normDim(args.dim as number, out.shape.length);
        return this.#set(out, { ...layout, axis: layout.axis === null ? null : layout.axis >= d ? layout.axis + 1 : layout.axis });
      }
      case "permute":
        return this.#set(out, { ...layout, axis: layout.axis === null ? null : (args.dims as number[]).map((d) => normDim(d, ndim)).indexOf(layout.axis) });
      case "transpose": {
        const [d0, d1] = [normDim(args.dim0 as number, ndim), normDim(args.dim1 as number, ndim)];
        const a = layout.axis;
        return this.#set(out, { ...layout, axis: a === d0 ? d1 : a === d1 ? d0 : a });
      }
      case "expand": {
        const axis = layout.axis === null ? null : layout.axis + out.shape.length - ndim;
        if (axis === null || out.shape[axis] !== layout.ids.length) return this.#freezeInputs(op);
        return this.#set(out, { ...layout, axis });
      }
      case "index": {
        const dims = (args.dims ?? [args.dim]) as number[];
        if (layout.axis === null || dims.some((d) => normDim(d, ndim) === layout.axis)) return this.#freezeInputs(op);
        const axis = channels.dropsDim && normDim(args.dim as number, ndim) < layout.axis ? layout.axis - 1 : layout.axis;
        for (const o of outputs) this.#set(o, { ...layout, axis });
        return;
      }
      case "pad": {
        const padded = (args.pad as number[]).length / 2;
        if (layout.axis === null || layout.axis >= ndim - padded) return this.#freezeInputs(op);
        return this.#set(out, layout);
      }
      case "spatial":
        if (layout.axis === null || layout.axis >= ndim - 2) return this.#freezeInputs(op);
        return this.#set(out, layout);
      case "reduce":
        return this.#set(out, this.#reduce(args.dim, args.keepdim, layout, ndim));
    }
  }

  /**
   * A 2-D parameter indexed along one dim is a lookup table (an embedding): its other dim holds
   * channels, which the rows it yields carry on (Torch-Pruning prunes an nn.Embedding's dim).
   */
  #lookupTable(x: unknown, dim: unknown): Layout | undefined {
    if (!isTensor(x) || x.shape.length !== 2 || typeof dim !== "number") return undefined;
    const name = this.#names.get(x.handle);
    if (name === undefined) return undefined;
    const axis = 1 - normDim(dim, 2);
    return { axis, ids: this.#slot(name, axis, x.shape[axis]!).ids };
  }

  #layerOp(op: ObservedOp, { layer: kind, axis }: Extract<Coupling, { kind: "layer" }>): void {
    const { input: x, weight: w, bias: b } = op.args as { input: ObservedTensor; weight: ObservedTensor; bias: ObservedTensor | null };
    const weight = this.#names.get(w.handle);
    const out = op.outputs[0]!;
    if (weight === undefined) {
      // A weight computed inside the forward: its channels cannot be pruned through a parameter.
      return this.#freezeInputs(op);
    }
    const outSlot = this.#slot(weight, 0, w.shape[0]!);
    const bias = b ? this.#names.get(b.handle) : undefined;
    if (b && bias !== undefined) this.sets.unionAll(this.#slot(bias, 0, b.shape[0]!).ids, outSlot.ids);
    else if (b) this.sets.freeze(outSlot.ids);
    const groups = (op.args.groups as number | undefined) ?? 1;
    const channelAxis = normDim(axis, x.shape.length);
    const inChannels = x.shape[channelAxis]!;
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
    this.#set(out, { axis: normDim(axis, out.shape.length), ids: outSlot.ids });
  }

  #norm(op: ObservedOp, axis: number): void {
    const x = op.args.input as ObservedTensor;
    const layout = this.#layout(x);
    const out = op.outputs[0];
    if (!layout) return;
    // Statistics over several trailing dims mix the channels with the dims after them.
    const shape = op.args.normalizedShape;
    if (Array.isArray(shape) && shape.length !== 1) return this.#freezeInputs(op);
    const channelAxis = normDim(axis, x.shape.length);
    const ids = this.#channelsAt(x, channelAxis, x.shape[channelAxis]!);
    if (!ids) return this.#freezeInputs(op);
    const params = Object.entries(op.args).flatMap(([name, t]) => (name !== "input" && isTensor(t) ? [t] : []));
    for (const p of params) {
      const name = this.#names.get(p.handle);
      if (name === undefined) this.sets.freeze(ids);
      else this.sets.unionAll(this.#slot(name, 0, p.shape[0]!).ids, ids);
    }
    const groups = op.args.numGroups;
    if (typeof groups === "number") {
      const owner = params.length > 0 ? parentPath(this.#names.get(params[0]!.handle) ?? "") : "";
      this.norms.push({ name: owner || `group_norm#${this.norms.length}`, groups, ids });
    }
    this.#set(out, layout);
  }

  /** Broadcasting element-wise ops: channels aligned from the right are the same channels. */
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

  /** cat, or stack when `newAxis`. */
  #join(tensors: ObservedTensor[], dim: number, newAxis: boolean, out: ObservedTensor): void {
    const layouts = tensors.map((t) => this.#layout(t));
    if (layouts.every((l) => !l)) return;
    const ndim = tensors[0]!.shape.length;
    const d = normDim(dim, newAxis ? ndim + 1 : ndim);
    if (!newAxis && layouts.every((l) => !l || l.axis === d)) {
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
    if (first.axis === null || (!newAxis && first.axis === d)) return this.#set(out, first);
    this.#set(out, { ...first, axis: newAxis && d <= first.axis ? first.axis + 1 : first.axis });
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

  /** A reduction over `dim` (a dim, dims, or all when null). */
  #reduce(dim: unknown, keepdim: unknown, layout: Layout, ndim: number): Layout | undefined {
    if (dim === null || dim === undefined || layout.axis === null) return undefined;
    const dims = (Array.isArray(dim) ? (dim as number[]) : [dim as number]).map((d) => normDim(d, ndim));
    if (dims.includes(layout.axis)) return undefined;
    const axis = keepdim ? layout.axis : layout.axis - dims.filter((d) => d < layout.axis!).length;
    return { axis, ids: layout.ids };
  }
}
