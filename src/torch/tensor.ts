// The Tensor class: a handle to a libtorch tensor, with PyTorch's method names.
import type { Device, DType } from "./dtype.js";
import { typedArrayFor } from "./dtype.js";
import { binaryOp, native, unaryOp, type Handle } from "./native.js";
import { track } from "./scope.js";

/** A dimension argument: one dim, several, or all when omitted. */
export type Dims = number | number[] | undefined;
export type MemoryFormat = "contiguous" | "channels_last";

const dimList = (dims: Dims): number[] | null => (dims === undefined ? null : typeof dims === "number" ? [dims] : dims);

/** Accepts reshape(2, 3) and reshape([2, 3]), as PyTorch does. */
export const sizesOf = (sizes: number[] | [number[]]): number[] =>
  (Array.isArray(sizes[0]) ? sizes[0] : sizes) as number[];

type Operand = Tensor | number | boolean;

function binary(name: string): (a: Operand, b: Operand) => Tensor {
  const op = binaryOp(name);
  return (a, b) => {
    const mask = (a instanceof Tensor ? 0 : 1) | (b instanceof Tensor ? 0 : 2);
    return new Tensor(op(a instanceof Tensor ? a.handle : a, b instanceof Tensor ? b.handle : b, mask));
  };
}

function unary(name: string): (t: Tensor) => Tensor {
  const op = unaryOp(name);
  return (t) => new Tensor(op(t.handle));
}

/** Binary element-wise ops with broadcasting; numbers act as Python scalars. */
export const ops = {
  add: binary("add"),
  sub: binary("sub"),
  mul: binary("mul"),
  div: binary("div"),
  pow: binary("pow"),
  maximum: binary("maximum"),
  minimum: binary("minimum"),
  remainder: binary("remainder"),
  eq: binary("eq"),
  ne: binary("ne"),
  lt: binary("lt"),
  le: binary("le"),
  gt: binary("gt"),
  ge: binary("ge"),
  logicalAnd: binary("logicalAnd"),
  logicalOr: binary("logicalOr"),
  matmul: binary("matmul"),
  bmm: binary("bmm"),
  neg: unary("neg"),
  abs: unary("abs"),
  sign: unary("sign"),
  sqrt: unary("sqrt"),
  rsqrt: unary("rsqrt"),
  exp: unary("exp"),
  log: unary("log"),
  sin: unary("sin"),
  cos: unary("cos"),
  tanh: unary("tanh"),
  sigmoid: unary("sigmoid"),
  silu: unary("silu"),
  relu: unary("relu"),
  floor: unary("floor"),
  ceil: unary("ceil"),
  round: unary("round"),
  reciprocal: unary("reciprocal"),
  logicalNot: unary("logicalNot"),
  isnan: unary("isnan"),
  isfinite: unary("isfinite"),
  trace: unary("trace"),
};

export class Tensor {
  /** The native handle; owned by this object alone. */
  readonly handle: Handle;
  /** Set by keep(): tidy() scopes leave this tensor alone. */
  kept = false;
  #shape: number[] | undefined;

  /** Wraps a native handle (internal: create tensors with tensor(), zeros(), ...). */
  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  // ---- metadata ----
  get shape(): readonly number[] {
    return (this.#shape ??= native.shape(this.handle));
  }
  get dtype(): DType {
    return native.dtype(this.handle) as DType;
  }
  get device(): Device {
    return native.device(this.handle) as Device;
  }
  get ndim(): number {
    return this.shape.length;
  }
  /** The number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim: number): number {
    const n = this.ndim;
    const d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n) throw new RangeError(`size(${dim}): dimension out of range for a ${n}-D tensor`);
    return this.shape[d]!;
  }
  isContiguous(format: MemoryFormat = "contiguous"): boolean {
    return native.isContiguous(this.handle, format);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }
  toString(): string {
    return this.isDisposed ? "Tensor(disposed)" : `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- lifetime ----
  /** Frees the native tensor now; using it afterwards throws "Tensor is disposed". */
  dispose(): void {
    native.dispose(this.handle);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- data out ----
  /** The elements in row-major order, copied to a typed array of the dtype. */
  toTypedArray(): Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array {
    if (this.dtype !== "bfloat16") return typedArrayFor(this.dtype, native.toBuffer(this.handle));
    const wide = this.to("float32"); // bfloat16 reads out as float32, exactly
    try {
      return typedArrayFor("float32", native.toBuffer(wide.handle));
    } finally {
      wide.dispose();
    }
  }
  /** The elements in row-major order as JS numbers. */
  toArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a);
  }
  /** The value of a one-element tensor. */
  item(): number {
    return native.item(this.handle);
  }

  // ---- conversion ----
  to(target: Device | DType | { device?: Device; dtype?: DType }): Tensor {
    let device: string | null = null;
    let dtype: string | null = null;
    if (typeof target === "string") {
      if (target === "cpu" || target.startsWith("cuda")) device = target;
      else dtype = target;
    } else {
      device = target.device ?? null;
      dtype = target.dtype ?? null;
    }
    return new Tensor(native.to(this.handle, device, dtype));
  }
  float(): Tensor {
    return this.to("float32");
  }
  double(): Tensor {
    return this.to("float64");
  }
  long(): Tensor {
    return this.to("int64");
  }
  cpu(): Tensor {
    return this.to("cpu");
  }

  // ---- views and indexing ----
  reshape(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.reshape(this.handle, sizesOf(shape)));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.view(this.handle, sizesOf(shape)));
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return new Tensor(native.permute(this.handle, sizesOf(dims)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.handle, dim0, dim1));
  }
  /** The 2-D transpose. */
  get T(): Tensor {
    return this.transpose(0, 1);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.handle, dim, start, length));
  }
  /** Elements start, start+step, ... before end along dim (PyTorch's t[..., start:end:step]). */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, dim, start ?? null, end ?? null, step));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  /** Pieces of `sizeOrSizes` elements (the last may be smaller), or of the given sizes. */
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return native.split(this.handle, sizeOrSizes, dim).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.handle, chunks, dim).map((h) => new Tensor(h));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim ?? null));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.flatten(this.handle, startDim, endDim));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.expand(this.handle, sizesOf(shape)));
  }
  repeat(...repeats: number[] | [number[]]): Tensor {
    return new Tensor(native.repeat(this.handle, sizesOf(repeats)));
  }
  flip(dims: number | number[]): Tensor {
    return new Tensor(native.flip(this.handle, typeof dims === "number" ? [dims] : dims));
  }
  contiguous(format: MemoryFormat = "contiguous"): Tensor {
    return new Tensor(native.contiguous(this.handle, format));
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }

  // ---- element-wise math ----
  add(other: Operand): Tensor {
    return ops.add(this, other);
  }
  sub(other: Operand): Tensor {
    return ops.sub(this, other);
  }
  mul(other: Operand): Tensor {
    return ops.mul(this, other);
  }
  div(other: Operand): Tensor {
    return ops.div(this, other);
  }
  pow(exponent: Operand): Tensor {
    return ops.pow(this, exponent);
  }
  maximum(other: Operand): Tensor {
    return ops.maximum(this, other);
  }
  minimum(other: Operand): Tensor {
    return ops.minimum(this, other);
  }
  remainder(other: Operand): Tensor {
    return ops.remainder(this, other);
  }
  eq(other: Operand): Tensor {
    return ops.eq(this, other);
  }
  ne(other: Operand): Tensor {
    return ops.ne(this, other);
  }
  lt(other: Operand): Tensor {
    return ops.lt(this, other);
  }
  le(other: Operand): Tensor {
    return ops.le(this, other);
  }
  gt(other: Operand): Tensor {
    return ops.gt(this, other);
  }
  ge(other: Operand): Tensor {
    return ops.ge(this, other);
  }
  logicalAnd(other: Operand): Tensor {
    return ops.logicalAnd(this, other);
  }
  logicalOr(other: Operand): Tensor {
    return ops.logicalOr(this, other);
  }
  logicalNot(): Tensor {
    return ops.logicalNot(this);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  sign(): Tensor {
    return ops.sign(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  rsqrt(): Tensor {
    return ops.rsqrt(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sin(): Tensor {
    return ops.sin(this);
  }
  cos(): Tensor {
    return ops.cos(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  silu(): Tensor {
    return ops.silu(this);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  floor(): Tensor {
    return ops.floor(this);
  }
  ceil(): Tensor {
    return ops.ceil(this);
  }
  round(): Tensor {
    return ops.round(this);
  }
  reciprocal(): Tensor {
    return ops.reciprocal(this);
  }
  square(): Tensor {
    return ops.mul(this, this);
  }
  isnan(): Tensor {
    return ops.isnan(this);
  }
  isfinite(): Tensor {
    return ops.isfinite(this);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return new Tensor(native.clamp(this.handle, min ?? null, max ?? null));
  }
  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }
  bmm(other: Tensor): Tensor {
    return ops.bmm(this, other);
  }

  // ---- reductions ----
  sum(dim?: Dims, keepdim = false, dtype?: DType): Tensor {
    return new Tensor(native.sum(this.handle, dimList(dim), keepdim, dtype ?? null));
  }
  mean(dim?: Dims, keepdim = false): Tensor {
    return new Tensor(native.mean(this.handle, dimList(dim), keepdim));
  }
  /** Variance; correction 1 (default) is the unbiased estimate, 0 the population variance. */
  var(dim?: Dims, { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.var(this.handle, dimList(dim), correction, keepdim));
  }
  std(dim?: Dims, { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.std(this.handle, dimList(dim), correction, keepdim));
  }
  norm(p = 2, dim?: Dims, keepdim = false): Tensor {
    return new Tensor(native.norm(this.handle, p, dimList(dim), keepdim));
  }
  /** The maximum over all elements, or the maximum values along `dim`. */
  max(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.max(this.handle, dim ?? null, keepdim));
  }
  min(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.min(this.handle, dim ?? null, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmin(this.handle, dim ?? null, keepdim));
  }
  /** Stable sort: [values, indices]. */
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    const [v, i] = native.sort(this.handle, dim, descending);
    return [new Tensor(v), new Tensor(i)];
  }
  argsort(dim = -1, descending = false): Tensor {
    return new Tensor(native.argsort(this.handle, dim, descending));
  }
  /** The k largest (or smallest) elements along dim: [values, indices]. */
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    const [v, i] = native.topk(this.handle, k, dim, largest, sorted);
    return [new Tensor(v), new Tensor(i)];
  }
  cumsum(dim: number): Tensor {
    return new Tensor(native.cumsum(this.handle, dim));
  }
  cumprod(dim: number): Tensor {
    return new Tensor(native.cumprod(this.handle, dim));
  }
  softmax(dim: number): Tensor {
    return new Tensor(native.softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return new Tensor(native.logSoftmax(this.handle, dim));
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  /** Makes this leaf tensor record operations for autograd (in place; returns this). */
  requiresGrad_(requiresGrad = true): this {
    native.setRequiresGrad(this.handle, requiresGrad);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The accumulated gradient (a new handle on the same storage), or null. */
  get grad(): Tensor | null {
    const h = native.grad(this.handle);
    return h === null ? null : new Tensor(h);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  /** Keeps the gradient of a non-leaf tensor after backward(). */
  retainGrad(): void {
    native.retainGrad(this.handle);
  }
  /** Accumulates d(this)/d(leaf) into every leaf's grad; `gradient` is needed for non-scalars. */
  backward(gradient?: Tensor, { retainGraph = false }: { retainGraph?: boolean } = {}): void {
    native.backward(this.handle, gradient?.handle ?? null, retainGraph);
  }
  /** A tensor on the same storage that autograd does not track. */
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }

  // ---- in place ----
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  fill_(value: number | boolean): this {
    native.fill_(this.handle, value);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  /** this += alpha * other */
  add_(other: Tensor | number, alpha = 1): this {
    const scalar = !(other instanceof Tensor);
    native.add_(this.handle, other instanceof Tensor ? other.handle : other, alpha, scalar);
    return this;
  }
  mul_(other: Tensor | number): this {
    const scalar = !(other instanceof Tensor);
    native.mul_(this.handle, other instanceof Tensor ? other.handle : other, scalar);
    return this;
  }
}
