// Module mirrors torch.nn.Module: registered parameters, buffers and children with dotted names,
// so stateDict() keys are exactly the checkpoint's keys. Parameters are kept tensors (outside
// every tidy scope) owned by the module; replacing one (as pruning does) disposes the old one.
import * as torch from "../torch/index.js";
import type { Device, MemoryFormat, Tensor } from "../torch/index.js";

export type StateDict = Map<string, Tensor>;

export class StateDictError extends Error {
  override name = "StateDictError";
}

export class Module {
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers (or replaces) a parameter: kept, and recording gradients. */
  registerParameter(name: string, value: Tensor | null): void {
    const old = this.#parameters.get(name);
    if (value !== null) {
      torch.keep(value);
      if (!value.requiresGrad && value.isLeaf) value.requiresGrad_(true);
    }
    if (old && old !== value) old.dispose();
    this.#parameters.set(name, value);
  }

  registerBuffer(name: string, value: Tensor): void {
    const old = this.#buffers.get(name);
    if (old && old !== value) old.dispose();
    this.#buffers.set(name, torch.keep(value));
  }

  registerModule<M extends Module>(name: string, module: M): M {
    this.#children.set(name, module);
    return module;
  }

  /** A parameter of this module (not of its children); throws when absent. */
  param(name: string): Tensor {
    const p = this.#parameters.get(name);
    if (!p) throw new Error(`${this.constructor.name} has no parameter "${name}"`);
    return p;
  }
  /** A parameter that may be absent (a bias that was not created). */
  optionalParam(name: string): Tensor | null {
    return this.#parameters.get(name) ?? null;
  }
  buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (!b) throw new Error(`${this.constructor.name} has no buffer "${name}"`);
    return b;
  }

  *namedChildren(): IterableIterator<[string, Module]> {
    yield* this.#children;
  }

  /** This module and every descendant, with dotted names ("" for this one). */
  *namedModules(prefix = ""): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(): IterableIterator<[string, Tensor]> {
    for (const [prefix, m] of this.namedModules())
      for (const [name, p] of m.#parameters) if (p) yield [prefix ? `${prefix}.${name}` : name, p];
  }

  *namedBuffers(): IterableIterator<[string, Tensor]> {
    for (const [prefix, m] of this.namedModules()) for (const [name, b] of m.#buffers) yield [prefix ? `${prefix}.${name}` : name, b];
  }

  parameters(): Tensor[] {
    return Array.from(this.namedParameters(), ([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  /** Parameters and buffers by dotted name; the tensors are the module's own (not copies). */
  stateDict(): StateDict {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** The module holding a dotted name's tensor, and the tensor's local name. */
  #owner(key: string): [Module, string] | undefined {
    const parts = key.split(".");
    let m: Module | undefined = this;
    for (const part of parts.slice(0, -1)) {
      m = m.#children.get(part);
      if (!m) return undefined;
    }
    return [m, parts[parts.length - 1]!];
  }

  /**
   * Copies a state dict into this module. strict: every key must match both ways. With
   * `assign`, a tensor whose shape differs replaces the module's (how a pruned checkpoint loads
   * into a module built from its config); without it a shape mismatch is an error.
   */
  loadStateDict(state: StateDict, { strict = true, assign = false }: { strict?: boolean; assign?: boolean } = {}): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const list = (ks: string[]) => ks.slice(0, 8).join(", ") + (ks.length > 8 ? `, ... (${ks.length} in all)` : "");
      const parts = [];
      if (missing.length) parts.push(`missing keys: ${list(missing)}`);
      if (unexpected.length) parts.push(`unexpected keys: ${list(unexpected)}`);
      throw new StateDictError(`the state dict does not match the model's: ${parts.join("; ")}`);
    }
    const pairs = [...own].flatMap(([key, target]) => {
      const src = state.get(key);
      return src ? [{ key, target, src, same: src.shape.join() === target.shape.join() }] : [];
    });
    const mismatched = assign ? [] : pairs.filter((p) => !p.same);
    if (mismatched.length)
      throw new StateDictError(`shape mismatch: ${mismatched.slice(0, 8).map((p) => `${p.key}: checkpoint [${p.src.shape.join(", ")}], model [${p.target.shape.join(", ")}]`).join("; ")}`);
    torch.noGrad(() => {
      for (const { key, target, src, same } of pairs) {
        if (same) target.copy_(src);
        else this.setTensor(key, torch.tidy(() => torch.keep(src.to({ dtype: target.dtype, device: target.device }).clone())));
      }
    });
  }

  /** Replaces the tensor under a dotted name (pruning swaps in narrower weights this way). */
  setTensor(key: string, value: Tensor): void {
    const found = this.#owner(key);
    if (!found) throw new Error(`no module holds "${key}"`);
    const [owner, name] = found;
    if (owner.#parameters.has(name)) owner.registerParameter(name, value);
    else if (owner.#buffers.has(name)) owner.registerBuffer(name, value);
    else throw new Error(`"${key}" is neither a parameter nor a buffer`);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Moves parameters and buffers to a device or dtype, in place (the module keeps its tensors' names). */
  to(target: Device | "float32" | "float64" | "bfloat16"): this {
    torch.noGrad(() => {
      for (const [, m] of this.namedModules()) {
        for (const [name, p] of m.#parameters) if (p) m.registerParameter(name, p.to(target).detach());
        for (const [name, b] of m.#buffers) m.registerBuffer(name, b.to(target));
      }
    });
    return this;
  }

  /**
   * Lays out every 4-D parameter (conv weights) in `format`, in place, as PyTorch's
   * `module.to(memory_format=...)`: with channels_last weights oneDNN takes and gives NHWC
   * activations, with no reorders between layers. Parameters are replaced: an optimizer made
   * before holds the old ones.
   */
  toMemoryFormat(format: MemoryFormat): this {
    torch.noGrad(() => {
      for (const [, m] of this.namedModules())
        for (const [name, p] of m.#parameters) if (p && p.ndim === 4 && !p.isContiguous(format)) m.registerParameter(name, p.detach().contiguous(format));
    });
    return this;
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m.#parameters.values()) p?.dispose();
      for (const b of m.#buffers.values()) b.dispose();
    }
  }
}

/** Children under "0", "1", ... (torch.nn.ModuleList). */
export class ModuleList<M extends Module> extends Module implements Iterable<M> {
  readonly items: M[] = [];
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (${this.items.length} modules)`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
