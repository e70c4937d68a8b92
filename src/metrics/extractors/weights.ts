// Reading an extractor's weights: the safetensors tensors and the file's sha256 (the stats cache
// key), with errors that say which file and what to do.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { Tensor } from "../../torch/index.js";
import { load } from "../../io/index.js";

export function readWeights(path: string, what: string): { tensors: Map<string, Tensor>; sha256: string } {
  if (!existsSync(path)) throw new Error(`${what}: no weights file at ${path}`);
  const bytes = readFileSync(path);
  return { tensors: load(bytes, path), sha256: createHash("sha256").update(bytes).digest("hex") };
}
