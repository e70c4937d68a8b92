// Class labels for a class-conditional UNet (diffusers 0.17's class_embed_type /
// num_class_embeds): which models take them, and labels from a dataset or a user checked against
// the model before any work, as the int64 tensor its forward takes.
import * as torch from "../torch/index.js";
import type { Device, Tensor } from "../torch/index.js";
import type { UNet2DConfig } from "../models/index.js";

/** The config keys that say how a UNet embeds class labels. */
export type ClassConditioning = Partial<Pick<UNet2DConfig, "class_embed_type" | "num_class_embeds">>;

/** Labels a model cannot take: missing, unwanted, out of its range, or of the wrong kind. */
export class ClassLabelError extends Error {
  override name = "ClassLabelError";
}

/** Whether the model adds a class embedding (and so needs labels in every forward). */
export function isClassConditional(c: ClassConditioning): boolean {
  return (c.class_embed_type ?? null) !== null || (c.num_class_embeds ?? null) !== null;
}

/** How the model is conditioned, in its config's words: `num_class_embeds 10`, `class_embed_type "timestep"`. */
export function conditioningName(c: ClassConditioning): string {
  const type = c.class_embed_type ?? null;
  return type === null ? `num_class_embeds ${c.num_class_embeds}` : `class_embed_type "${type}"`;
}

/**
 * Checks integer labels (a dataset's, a user's) for model `c`: each a non-negative integer, below
 * num_class_embeds for a table of class embeddings. An "identity" model takes embedding vectors,
 * never integer labels. `source` starts the messages.
 */
export function checkClassLabels(c: ClassConditioning, labels: ArrayLike<number>, source: string): void {
  if (c.class_embed_type === "identity")
    throw new ClassLabelError(`${source}: the model's class_embed_type "identity" takes class embeddings [B, time_embed_dim], not integer class labels`);
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!Number.isSafeInteger(l) || l < 0) throw new ClassLabelError(`${source}: class label ${l} (at ${i}) is not a class number 0, 1, ...`);
    if (l > max) max = l;
  }
  const k = c.class_embed_type == null ? c.num_class_embeds : null;
  if (k != null && max >= k)
    throw new ClassLabelError(`${source}: the largest class label is ${max}, but the model has num_class_embeds ${k} (labels 0..${k - 1}); use a model with at least ${max + 1} classes or data with fewer`);
}

/** What `generate` and the gradient loop take as labels: one class for all, one per sample, or a tensor. */
export type ClassLabelsInput = Tensor | number | readonly number[] | Int32Array;

/**
 * The labels of `n` samples for model `c` as the tensor its forward takes (int64 [n], or the
 * embeddings [n, D] of an "identity" model), checked; undefined for an unconditional model
 * given none. The caller disposes the tensor. `source` starts the messages.
 */
export function classLabelTensor(c: ClassConditioning, given: ClassLabelsInput | undefined, n: number, source: string, device?: Device): Tensor | undefined {
  const conditional = isClassConditional(c);
  if (given === undefined) {
    if (conditional) throw new ClassLabelError(`${source}: the model is class-conditional (${conditioningName(c)}): give class labels, one per sample (${n})`);
    return undefined;
  }
  if (!conditional) throw new ClassLabelError(`${source}: class labels were given, but the model is not class-conditional (its config has class_embed_type and num_class_embeds null)`);
  const options = device === undefined ? {} : { device };
  if (typeof given === "number") {
    checkClassLabels(c, [given], source);
    return torch.full([n], given, { ...options, dtype: "int64" });
  }
  if (!(given instanceof torch.Tensor)) {
    if (given.length !== n) throw new ClassLabelError(`${source}: ${given.length} class labels for ${n} samples; give one per sample`);
    checkClassLabels(c, given, source);
    return torch.tensor(Array.from(given), { ...options, dtype: "int64" });
  }
  if (given.shape[0] !== n) throw new ClassLabelError(`${source}: class labels of shape [${given.shape.join(", ")}] for ${n} samples; give one per sample`);
  if (c.class_embed_type === "identity") {
    if (given.ndim !== 2) throw new ClassLabelError(`${source}: the model's class_embed_type "identity" takes class embeddings [${n}, time_embed_dim], got shape [${given.shape.join(", ")}]`);
    return given.to(device === undefined ? {} : { device });
  }
  if (given.ndim !== 1 || (given.dtype !== "int64" && given.dtype !== "int32"))
    throw new ClassLabelError(`${source}: class labels must be integers of shape [${n}] (int64), got ${given.dtype} [${given.shape.join(", ")}]`);
  checkClassLabels(c, given.toArray(), source);
  return given.to({ ...options, dtype: "int64" });
}

/** Labels 0..k-1 repeated over n samples: a preview grid that shows every class. */
export function cycledClassLabels(k: number, n: number): number[] {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`cycledClassLabels: k must be a positive integer, got ${k}`);
  return Array.from({ length: n }, (_, i) => i % k);
}

/**
 * The classes of `n` samples when none are chosen: a model with a class table
 * (num_class_embeds) samples its classes in turn, 0..K-1, 0, ...; an unconditional model takes
 * none (undefined). Other class-conditional models cannot be given a default and are refused.
 */
export function defaultClassLabels(c: ClassConditioning, n: number, source: string): number[] | undefined {
  if (!isClassConditional(c)) return undefined;
  if (c.class_embed_type != null || c.num_class_embeds == null)
    throw new ClassLabelError(`${source}: the model is class-conditional (${conditioningName(c)}) with no class table to sample in turn; give its class labels`);
  return cycledClassLabels(c.num_class_embeds, n);
}
