// Model folders as diffusers lays them out: a bare model folder (config.json +
// diffusion_pytorch_model.safetensors) or a pipeline folder (unet/, scheduler/, model_index.json).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import { loadFile, saveFile, writeJsonAtomic } from "../io/index.js";
import { checkWeights } from "./weights.js";

export const WEIGHTS_NAME = "diffusion_pytorch_model.safetensors";
export const CONFIG_NAME = "config.json";

export class ModelFolderError extends Error {
  override name = "ModelFolderError";
}

export interface ModelFolder {
  /** The folder holding config.json and the weights. */
  modelDir: string;
  /** The folder holding scheduler_config.json, when there is one. */
  schedulerDir: string | null;
}

/** Finds the model (and scheduler) inside a bare model folder or a pipeline folder. */
export function resolveModelFolder(dir: string): ModelFolder {
  if (!existsSync(dir)) throw new ModelFolderError(`${dir}: no such folder; give a diffusers model folder (config.json + ${WEIGHTS_NAME}) or pipeline folder (unet/, scheduler/)`);
  const bare = existsSync(join(dir, CONFIG_NAME));
  const modelDir = bare ? dir : join(dir, "unet");
  if (!existsSync(join(modelDir, CONFIG_NAME)))
    throw new ModelFolderError(`${dir}: neither ${CONFIG_NAME} nor unet/${CONFIG_NAME} is there; is this a diffusers model folder?`);
  checkWeightsFile(modelDir);
  const candidates = bare ? [dir, join(dir, "scheduler")] : [join(dir, "scheduler"), dir];
  const schedulerDir = candidates.find((d) => existsSync(join(d, "scheduler_config.json"))) ?? null;
  return { modelDir, schedulerDir };
}

/**
 * The folder of one pipeline component: `dir` itself when it holds config.json, else the first of
 * `subfolders` (e.g. "vqvae", "vae") that does.
 */
export function resolveComponentFolder(dir: string, subfolders: readonly string[]): string {
  const options = [CONFIG_NAME, ...subfolders.map((s) => `${s}/${CONFIG_NAME}`)].join(", ");
  if (!existsSync(dir)) throw new ModelFolderError(`${dir}: no such folder; give a diffusers model folder or a pipeline folder (one of ${options}, with ${WEIGHTS_NAME})`);
  const modelDir = [dir, ...subfolders.map((s) => join(dir, s))].find((d) => existsSync(join(d, CONFIG_NAME)));
  if (!modelDir) throw new ModelFolderError(`${dir}: none of ${options} is there; is this a diffusers model or pipeline folder?`);
  checkWeightsFile(modelDir);
  return modelDir;
}

/** The weights must be there as safetensors: pickles are named, and refused. */
function checkWeightsFile(modelDir: string): void {
  if (existsSync(join(modelDir, WEIGHTS_NAME))) return;
  const pickle = ["diffusion_pytorch_model.bin", "diffusion_pytorch_model.pt"].find((f) => existsSync(join(modelDir, f)));
  throw new ModelFolderError(
    pickle
      ? `${modelDir}: only ${pickle} is there; convert it to ${WEIGHTS_NAME} (in Python: diffusers' save_pretrained(..., safe_serialization=True)), pickles are not read`
      : `${modelDir}: ${WEIGHTS_NAME} is missing`,
  );
}

export function readConfig(modelDir: string): Record<string, unknown> {
  const file = join(modelDir, CONFIG_NAME);
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFolderError(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Attention parameter names of checkpoints from before diffusers 0.14, and their new names. */
const LEGACY_ATTENTION = /^(.*\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$/;
const RENAMED: Record<string, string> = { query: "to_q", key: "to_k", value: "to_v", proj_attn: "to_out.0" };

/** A checkpoint's tensors under current diffusers names, each checked by checkWeights. */
export function readWeights(modelDir: string): Map<string, Tensor> {
  const file = join(modelDir, WEIGHTS_NAME);
  const raw = loadFile(file);
  try {
    checkWeights(raw, file);
  } catch (err) {
    for (const t of raw.values()) t.dispose();
    throw err;
  }
  const out = new Map<string, Tensor>();
  for (const [key, t] of raw) {
    const m = LEGACY_ATTENTION.exec(key);
    out.set(m ? `${m[1]}${RENAMED[m[2]!]}.${m[3]}` : key, t);
  }
  return out;
}

export function writeModelFolder(dir: string, config: Record<string, unknown>, state: Map<string, Tensor>): void {
  mkdirSync(dir, { recursive: true });
  saveFile(state, join(dir, WEIGHTS_NAME), { format: "pt" });
  writeJsonAtomic(join(dir, CONFIG_NAME), config);
}

/** Every tensor's name and shape, as one string. */
const shapesOf = (model: Module): string => Array.from(model.stateDict(), ([k, t]) => `${k}:${t.shape.join("x")}`).join(";");

/**
 * Loads `modelDir`'s weights into `model` (built from its config), each layer taking the shape of
 * its checkpoint tensor, so pruned checkpoints load too. When some shape differs from the config's,
 * `checkRuns` must prove the layers fit together (one small forward). On any error `model` is
 * disposed and the error names the folder.
 */
export function loadPretrainedWeights<M extends Module>(model: M, modelDir: string, checkRuns: () => void): M {
  let weights: Map<string, Tensor>;
  try {
    weights = readWeights(modelDir);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const configShapes = shapesOf(model);
  try {
    model.loadStateDict(weights, { assign: true });
    if (shapesOf(model) !== configShapes) {
      try {
        torch.noGrad(() => torch.tidy(() => void checkRuns())); // void: the output is not kept
      } catch (err) {
        throw new Error(`the checkpoint's layer shapes do not fit together (${err instanceof Error ? err.message : String(err)}); was ${modelDir} pruned and saved by a tool that changed only some layers?`);
      }
    }
  } catch (err) {
    model.dispose();
    throw new Error(`${modelDir}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
  return model.eval();
}
