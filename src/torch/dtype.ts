// Element types and devices.

/**
 * Tensor element types. bfloat16 is a compute type (a model cast for bf16 inference); its values
 * are read out as float32. float16 and bfloat16 data are widened to float32 when loaded.
 */
export type DType = "float32" | "float64" | "int64" | "int32" | "uint8" | "bool" | "bfloat16";
export type LoadDType = DType | "float16";
/** "cpu", or "cuda"/"cuda:N" when the addon is built against a CUDA libtorch. */
export type Device = "cpu" | "cuda" | `cuda:${number}`;

export type TypedArrayOf<D extends LoadDType> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "int64"
      ? BigInt64Array
      : D extends "int32"
        ? Int32Array
        : Uint8Array | Uint16Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** The typed array that holds a dtype's elements (its bytes, for toTypedArray). */
export function typedArrayFor(dtype: DType, buffer: ArrayBuffer): Exclude<AnyTypedArray, Uint16Array> {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer);
    case "float64":
      return new Float64Array(buffer);
    case "int64":
      return new BigInt64Array(buffer);
    case "int32":
      return new Int32Array(buffer);
    case "uint8":
    case "bool":
      return new Uint8Array(buffer);
    case "bfloat16":
      throw new Error("bfloat16 elements are read as float32: convert the tensor first");
  }
}

/** The dtype a typed array's elements are, when no dtype is given. */
export function dtypeOf(data: AnyTypedArray): LoadDType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Uint8Array) return "uint8";
  throw new TypeError("a Uint16Array needs its dtype: float16 or bfloat16");
}

export const isFloating = (d: DType): boolean => d === "float32" || d === "float64";
