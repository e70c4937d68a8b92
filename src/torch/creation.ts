// Creating tensors: constants, ranges, random draws (from the generator manualSeed() seeds),
// and JS data.
import type { AnyTypedArray, Device, DType, LoadDType } from "./dtype.js";
import { dtypeOf } from "./dtype.js";
import { native } from "./native.js";
import { Tensor } from "./tensor.js";

export interface TensorOptions {
  /** Default float32 (int64 for integer ranges and randint). */
  dtype?: DType;
  /** Default "cpu". */
  device?: Device;
}

/** Nested arrays of numbers or booleans, as torch.tensor takes them. */
export type NestedArray = number | boolean | NestedArray[];

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0]!;
  }
  return shape;
}

function flattenInto(data: NestedArray, shape: number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError("tensor(): ragged nested array (an element is deeper than the first)");
    out.push(typeof data === "boolean" ? Number(data) : data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth])
    throw new TypeError(`tensor(): ragged nested array: expected ${shape[depth]} elements at depth ${depth}`);
  for (const d of data) flattenInto(d, shape, depth + 1, out);
}

function firstLeaf(data: NestedArray): number | boolean | undefined {
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    if (level.length === 0) return undefined;
    level = level[0]!;
  }
  return level;
}

/**
 * A tensor holding a copy of `data`. Plain JS numbers become float32 unless a dtype is given
 * (JS does not tell integers from floats); booleans become bool. Typed arrays keep their element
 * type (Uint16Array needs dtype float16 or bfloat16, which load as float32) and are 1-D unless
 * `shape` is given.
 */
export function tensor(
  data: NestedArray | AnyTypedArray,
  options: { dtype?: LoadDType; device?: Device; shape?: number[] } = {},
): Tensor {
  const device = options.device ?? null;
  if (ArrayBuffer.isView(data)) {
    const dtype = options.dtype ?? dtypeOf(data);
    const shape = options.shape ?? [data.length];
    return new Tensor(native.fromBuffer(data, shape, dtype, device));
  }
  const shape = options.shape ?? inferShape(data);
  const flat: number[] = [];
  flattenInto(data, inferShape(data), 0, flat);
  const dtype = options.dtype ?? (typeof firstLeaf(data) === "boolean" ? "bool" : "float32");
  let buffer: AnyTypedArray;
  switch (dtype) {
    case "float64":
      buffer = Float64Array.from(flat);
      break;
    case "int64":
      buffer = BigInt64Array.from(flat, (v) => BigInt(Math.trunc(v)));
      break;
    case "int32":
      buffer = Int32Array.from(flat);
      break;
    case "uint8":
    case "bool":
      buffer = Uint8Array.from(flat);
      break;
    case "float32":
      buffer = Float32Array.from(flat);
      break;
    default:
      throw new TypeError(`tensor(): dtype ${dtype} is for typed-array data only`);
  }
  return new Tensor(native.fromBuffer(buffer, shape, dtype, device));
}

export function scalarTensor(value: number, options: TensorOptions = {}): Tensor {
  return full([], value, options);
}

export function empty(shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.empty(shape, options.dtype ?? null, options.device ?? null));
}
export function zeros(shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.zeros(shape, options.dtype ?? null, options.device ?? null));
}
export function ones(shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.ones(shape, options.dtype ?? null, options.device ?? null));
}
export function full(shape: number[], value: number | boolean, options: TensorOptions = {}): Tensor {
  return new Tensor(native.full(shape, value, options.dtype ?? null, options.device ?? null));
}

/** [start, end) in steps; arange(n) is [0, n). Integer arguments give int64. */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new RangeError("arange(): step must not be 0");
  return new Tensor(native.arange(start, end, step, options.dtype ?? null, options.device ?? null));
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return new Tensor(native.linspace(start, end, steps, options.dtype ?? null, options.device ?? null));
}

/** Uniform on [0, 1). */
export function rand(shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.rand(shape, options.dtype ?? null, options.device ?? null));
}
/** Standard normal. */
export function randn(shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.randn(shape, options.dtype ?? null, options.device ?? null));
}
/** Integers uniform on [low, high). */
export function randint(low: number, high: number, shape: number[], options: TensorOptions = {}): Tensor {
  return new Tensor(native.randint(low, high, shape, options.dtype ?? null, options.device ?? null));
}
/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, options: { device?: Device } = {}): Tensor {
  return new Tensor(native.randperm(n, options.device ?? null));
}

const like = (t: Tensor, options: TensorOptions): Required<TensorOptions> => ({
  dtype: options.dtype ?? t.dtype,
  device: options.device ?? t.device,
});
export const zerosLike = (t: Tensor, options: TensorOptions = {}): Tensor => zeros([...t.shape], like(t, options));
export const onesLike = (t: Tensor, options: TensorOptions = {}): Tensor => ones([...t.shape], like(t, options));
export const fullLike = (t: Tensor, value: number, options: TensorOptions = {}): Tensor =>
  full([...t.shape], value, like(t, options));
export const randnLike = (t: Tensor, options: TensorOptions = {}): Tensor => randn([...t.shape], like(t, options));
export const randLike = (t: Tensor, options: TensorOptions = {}): Tensor => rand([...t.shape], like(t, options));
