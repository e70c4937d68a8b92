// An ONNX graph under construction: nodes in order, initializers, and the int64 vectors that
// shape ops take. Sizes that grow with the batch are computed from the first input's shape at run
// time, so the exported graph takes any batch size.
import type { DType } from "../torch/index.js";
import { ATTRIBUTE_TYPE, DATA_TYPE, type AttributeProto, type NodeProto, type TensorProto } from "./proto.js";

/** An attribute value: integers and strings as they are, a float as { float }. */
export type Attr = number | number[] | string | { float: number };

/** Element data of a constant, in the typed array of its dtype. */
export type ConstantData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** Something the exporter cannot express in ONNX; the exporter adds the op and the layer. */
export class Unsupported extends Error {}

/** The two batch sizes the forward is traced at: a size that differs between them grows with the batch. */
export const TRACE_BATCHES = [2, 3] as const;

function attribute(name: string, value: Attr): AttributeProto {
  if (typeof value === "string") return { name, type: ATTRIBUTE_TYPE.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: ATTRIBUTE_TYPE.INTS, ints: value };
  if (typeof value === "number") return { name, type: ATTRIBUTE_TYPE.INT, i: value };
  return { name, type: ATTRIBUTE_TYPE.FLOAT, f: value.float };
}

const bytesOf = (data: ConstantData): Uint8Array => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

export class OnnxBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  /** Prefix of the next nodes' names: the layer they come from. */
  scope = "";
  readonly #batchSource: string;
  #batch: string | undefined;
  readonly #cache = new Map<string, string>();
  #count = 0;

  /** `batchSource`: a graph input whose first dimension is the batch. */
  constructor(batchSource: string) {
    this.#batchSource = batchSource;
  }

  /** Adds a node; returns its output names. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const id = this.#count++;
    const names = Array.from({ length: outputs }, (_, i) => `${opType}_${id}${outputs > 1 ? `_${i}` : ""}`);
    const attribute_ = Object.entries(attrs).map(([name, value]) => attribute(name, value));
    this.nodes.push({ name: `${this.scope ? `${this.scope}/` : ""}${opType}_${id}`, opType, input: [...inputs], output: names, attribute: attribute_ });
    return names;
  }

  /** A node with one output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}): string {
    return this.node(opType, inputs, attrs)[0]!;
  }

  /** Names `value` as the graph output `name` (an Identity node). */
  output(value: string, name: string): void {
    this.nodes.push({ name: `${name}/Identity`, opType: "Identity", input: [value], output: [name], attribute: [] });
  }

  /** Adds an initializer under `name`. */
  initializer(name: string, dtype: DType, dims: readonly number[], data: ConstantData): string {
    this.initializers.push({ name, dims: [...dims], dataType: DATA_TYPE[dtype], rawData: bytesOf(data) });
    return name;
  }

  /** A constant initializer; equal small constants are stored once. */
  constant(dtype: DType, dims: readonly number[], data: ConstantData): string {
    const key = data.length <= 64 ? `${dtype}:${dims.join("x")}:${Array.from(data as ArrayLike<number | bigint>, String).join(",")}` : null;
    const known = key === null ? undefined : this.#cache.get(key);
    if (known !== undefined) return known;
    const name = this.initializer(`const_${this.#count++}`, dtype, dims, data);
    if (key !== null) this.#cache.set(key, name);
    return name;
  }

  /** An int64 vector (axes, sizes, starts). */
  ints(values: readonly number[]): string {
    return this.constant("int64", [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** A 0-d constant of `dtype`. */
  scalar(value: number | boolean, dtype: DType): string {
    return this.constant(dtype, [], filled(dtype, 1, value));
  }

  /** A constant of shape `dims` holding `value` everywhere (a norm's unit scale). */
  filled(dtype: DType, dims: readonly number[], value: number): string {
    return this.constant(dtype, dims, filled(dtype, dims.reduce((a, b) => a * b, 1), value));
  }

  /** The batch size at run time, as an int64 vector [N]. */
  batch(): string {
    this.#batch ??= this.op("Slice", [this.op("Shape", [this.#batchSource]), this.ints([0]), this.ints([1])]);
    return this.#batch;
  }

  /**
   * An int64 vector of sizes that were `a` at batch TRACE_BATCHES[0] and `b` at TRACE_BATCHES[1]:
   * equal entries are constants, the others multiples of the batch. With `infer` (a Reshape
   * target), a lone batch-dependent entry becomes -1.
   */
  sizes(a: readonly number[], b: readonly number[], { infer = false } = {}): string {
    const grows = a.map((v, i) => v !== b[i]);
    if (!grows.includes(true)) return this.ints(a);
    if (infer && grows.filter(Boolean).length === 1 && !a.includes(-1)) return this.ints(a.map((v, i) => (grows[i] ? -1 : v)));
    const [na, nb] = TRACE_BATCHES;
    const parts = a.map((v, i) => {
      if (!grows[i]) return this.ints([v]);
      const perSample = (b[i]! - v) / (nb - na);
      if (!Number.isInteger(perSample) || v !== perSample * na)
        throw new Unsupported(`a size is ${v} at batch ${na} and ${b[i]} at batch ${nb}: not a multiple of the batch`);
      return perSample === 1 ? this.batch() : this.op("Mul", [this.batch(), this.ints([perSample])]);
    });
    return this.op("Concat", parts, { axis: 0 });
  }
}

function filled(dtype: DType, count: number, value: number | boolean): ConstantData {
  const v = Number(value);
  switch (dtype) {
    case "float32":
      return new Float32Array(count).fill(v);
    case "float64":
      return new Float64Array(count).fill(v);
    case "int64":
      return new BigInt64Array(count).fill(BigInt(Math.trunc(v)));
    case "int32":
      return new Int32Array(count).fill(v);
    case "uint8":
    case "bool":
      return new Uint8Array(count).fill(v);
    case "bfloat16":
      throw new Unsupported("a bfloat16 model: export it in float32 (onnxruntime chooses its own precision)");
  }
}
