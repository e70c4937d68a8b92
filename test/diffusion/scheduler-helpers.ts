// Shared by the scheduler tests: seeded data as both tensors and float64 arrays.
import * as torch from "../../src/torch/index.js";
import { mulberry32 } from "../helpers/random.js";


/** Seeded standard-normal values (Box-Muller), rounded to float32 so the tensor and the array agree. */
export function normals(n: number, seed: number, scale = 1): Float64Array {
  const rand = mulberry32(seed);
  return Float64Array.from({ length: n }, () => Math.fround(scale * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())));
}

/** A float32 tensor of the given shape holding `values`. */
export const tensorOf = (values: Float64Array, shape: number[]): torch.Tensor => torch.tensor(Float32Array.from(values), { shape });

export const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
