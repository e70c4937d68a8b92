// A model and its training schedule, loaded the same way by every command (as diffusers'
// DiffusionPipeline.from_pretrained): a model folder (config.json + weights, the scheduler's
// config beside it), a pipeline folder (unet/, scheduler/), a latent pipeline folder (LDMPipeline:
// unet/ on latents, vqvae/ or vae/, scheduler/); or an architecture's config.json with weights
// drawn at random, to see what it costs before and after pruning. A folder diffprune cannot read
// whole is refused, never half-used: a model_index.json naming a component or class it does not
// have, or a latent pipeline given to code that would treat its latents as images.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { OptionError, writeFileAtomic, writeJsonAtomic } from "../io/index.js";
import { AutoencoderKL, CONFIG_NAME, resolveComponentFolder, resolveModelFolder, resolveUNet2DConfig, UNet2DModel, VQModel } from "../models/index.js";
import { readConfig } from "../models/checkpoint.js";
import { DDPMScheduler, loadScheduler, type Scheduler } from "./schedulers/index.js";

export interface ModelSource {
  /** A diffusers model or pipeline folder. */
  model?: string | undefined;
  /** A UNet2DModel config.json instead (weights drawn at random from `seed`). */
  config?: string | undefined;
  /**
   * With `config`: an autoencoder folder (AutoencoderKL or VQModel, or a pipeline's vae/ or
   * vqvae/) whose latents the new UNet denoises, making a latent pipeline.
   */
  autoencoder?: string | undefined;
  seed?: number;
}

/** The autoencoder of a latent pipeline. */
export type Autoencoder = VQModel | AutoencoderKL;

/** The subfolder a pipeline keeps its autoencoder in (LDMPipeline: vqvae; others: vae). */
export type AutoencoderFolder = "vqvae" | "vae";

export interface Pipeline {
  model: UNet2DModel;
  /** The folder's scheduler, or diffusers' DDPMScheduler defaults when it has none. */
  scheduler: Scheduler;
  /** A latent pipeline's autoencoder: the UNet denoises its latents, its decoder makes the images. Null for a model on pixels. */
  autoencoder: Autoencoder | null;
  /** Where the autoencoder was read from; a pipeline written again copies that folder byte for byte. */
  autoencoderSource: { folder: AutoencoderFolder; dir: string } | null;
}

export interface LoadPipelineOptions {
  /**
   * Whether the caller handles a latent pipeline's autoencoder (default false). Without it a
   * latent pipeline is refused: its UNet alone makes latents, not images.
   */
  latent?: boolean;
}

/** A pipeline folder that diffprune cannot read whole. */
export class PipelineError extends Error {
  override name = "PipelineError";
}

export const MODEL_INDEX = "model_index.json";
export const SCHEDULER_CONFIG = "scheduler_config.json";

/** Pipelines whose sampling diffprune does as diffusers does: on pixels, and on an autoencoder's latents. */
const PIXEL_PIPELINES = ["DDPMPipeline", "DDIMPipeline"];
const LATENT_PIPELINES = ["LDMPipeline"];
type AutoencoderClass = Autoencoder["config"]["_class_name"];
/** The classes diffprune has, for each component a pipeline may name. */
const COMPONENTS: Record<string, readonly string[]> = {
  unet: ["UNet2DModel"],
  scheduler: ["DDPMScheduler", "DDIMScheduler"],
  vqvae: ["VQModel", "AutoencoderKL"],
  vae: ["AutoencoderKL", "VQModel"],
};

/** What a pipeline folder holds, read from its model_index.json (or its subfolders when it has none). */
interface PipelineLayout {
  className: string | null;
  autoencoder: { folder: AutoencoderFolder; className: AutoencoderClass } | null;
}

const show = (v: unknown): string => JSON.stringify(v);

/** Reads and checks a pipeline folder's model_index.json, or lays out a folder without one; null for a bare model folder. */
export function pipelineLayout(dir: string): PipelineLayout | null {
  if (existsSync(join(dir, CONFIG_NAME))) return null; // a bare model folder: one UNet, on pixels
  const file = join(dir, MODEL_INDEX);
  if (!existsSync(file)) return layoutWithoutIndex(dir);
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new PipelineError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (index === null || typeof index !== "object" || Array.isArray(index)) throw new PipelineError(`${file}: expected a JSON object naming the pipeline's components`);
  const record = index as Record<string, unknown>;
  const named = new Map<string, string>();
  for (const [key, value] of Object.entries(record)) {
    if (key.startsWith("_")) continue;
    if (!Array.isArray(value) || value.length !== 2) throw new PipelineError(`${file}: ${key} is ${show(value)}; a component is ["library", "ClassName"]`);
    const [library, className] = value as unknown[];
    if (library === null && className === null) continue; // an optional component left out
    const known = COMPONENTS[key];
    if (!known)
      throw new PipelineError(
        `${file}: the pipeline has a ${key} (${show(library)} ${show(className)}), which diffprune does not have; ` +
          `it reads pipelines of unet (UNet2DModel), scheduler (DDPMScheduler, DDIMScheduler) and optionally vqvae or vae (VQModel, AutoencoderKL)`,
      );
    if (typeof className !== "string" || !known.includes(className))
      throw new PipelineError(`${file}: ${key} is ${show(className)}, which diffprune does not have (its ${key} is one of ${known.join(", ")})`);
    if (!existsSync(join(dir, key))) throw new PipelineError(`${file} names ${key} (${className}) but ${join(dir, key)} is missing`);
    named.set(key, className);
  }
  const className = typeof record._class_name === "string" ? record._class_name : null;
  if (!named.has("unet")) throw new PipelineError(`${file} names no unet; diffprune reads pipelines whose denoiser is a UNet2DModel in unet/`);
  if (named.has("vqvae") && named.has("vae")) throw new PipelineError(`${file} names both vqvae and vae; a latent pipeline has one autoencoder`);
  if (named.has("scheduler") && !existsSync(join(dir, "scheduler", SCHEDULER_CONFIG)))
    throw new PipelineError(`${file} names a scheduler but ${join(dir, "scheduler", SCHEDULER_CONFIG)} is missing`);
  const folder: AutoencoderFolder | null = named.has("vqvae") ? "vqvae" : named.has("vae") ? "vae" : null;
  const autoencoder = folder ? { folder, className: named.get(folder) as AutoencoderClass } : null;
  if (className !== null) {
    const expected = autoencoder ? LATENT_PIPELINES : PIXEL_PIPELINES;
    if (![...PIXEL_PIPELINES, ...LATENT_PIPELINES].includes(className))
      throw new PipelineError(
        `${file}: _class_name ${show(className)} is a pipeline diffprune cannot sample as its authors do; ` +
          `it reads ${[...PIXEL_PIPELINES, ...LATENT_PIPELINES].join(", ")} folders`,
      );
    if (!expected.includes(className))
      throw new PipelineError(
        autoencoder
          ? `${file}: ${className} has no autoencoder, but this folder names ${folder} (${autoencoder.className}); make it an LDMPipeline, or remove ${folder}`
          : `${file}: ${className} needs an autoencoder (vqvae or vae), and this folder names none`,
      );
  }
  return { className, autoencoder };
}

/** A pipeline folder without model_index.json: unet/, and a vqvae/ or vae/ when there is one (its config.json names its class). */
function layoutWithoutIndex(dir: string): PipelineLayout {
  const found = (["vqvae", "vae"] as const).filter((f) => existsSync(join(dir, f, CONFIG_NAME)));
  if (found.length > 1) throw new PipelineError(`${dir} holds both vqvae/ and vae/ and no ${MODEL_INDEX} saying which the pipeline uses; remove one`);
  const folder = found[0];
  if (!folder) return { className: null, autoencoder: null };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, folder, CONFIG_NAME), "utf8"));
  } catch (err) {
    throw new PipelineError(`${join(dir, folder, CONFIG_NAME)}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const declared = (raw as Record<string, unknown> | null)?._class_name;
  const className = declared === undefined ? (folder === "vqvae" ? "VQModel" : "AutoencoderKL") : declared;
  if (className !== "VQModel" && className !== "AutoencoderKL")
    throw new PipelineError(`${join(dir, folder, CONFIG_NAME)}: _class_name ${show(className)} is not an autoencoder diffprune has (VQModel, AutoencoderKL)`);
  return { className: null, autoencoder: { folder, className } };
}

/** Loads `model` (with its folder's scheduler, and a latent pipeline's autoencoder) or builds `config` at random, in eval mode. */
export function loadPipeline(source: ModelSource, { latent = false }: LoadPipelineOptions = {}): Pipeline {
  if (Boolean(source.model) === Boolean(source.config))
    throw new OptionError((n) => `give either ${n("model")} DIR (a diffusers model folder) or ${n("config")} FILE (a config.json, weights drawn at random)`);
  if (source.model && source.autoencoder)
    throw new OptionError((n) => `${n("autoencoder")} makes a new latent pipeline with ${n("config")}; a model folder brings its own autoencoder (or none)`);
  if (source.model) return loadFolder(source.model, latent);
  if (source.autoencoder && !latent)
    throw new OptionError((n) => `${n("autoencoder")} makes a latent pipeline, whose UNet alone makes latents, not images; this reads models on pixels only`);
  const file = source.config!;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : err instanceof Error ? err.message : String(err);
    throw new OptionError((n) => `cannot read ${n("config")} ${file}: ${why}; ${n("config")} takes a UNet2DModel config.json`);
  }
  const config = resolveUNet2DConfig(raw, file);
  torch.manualSeed(source.seed ?? 0);
  const model = torch.noGrad(() => new UNet2DModel(config)).eval();
  if (!source.autoencoder) return { model, scheduler: new DDPMScheduler(), autoencoder: null, autoencoderSource: null };
  // Latents are not images in [-1, 1]: clipping the predicted x0 there (diffusers' default for
  // pixels) would wreck them, so a latent pipeline's scheduler does not clip, as latent-diffusion's.
  const scheduler = new DDPMScheduler({ clip_sample: false });
  try {
    const { autoencoder, folder, dir } = loadAutoencoderFolder(source.autoencoder);
    try {
      checkLatentShapes(file, model, autoencoder, dir);
    } catch (err) {
      autoencoder.dispose();
      throw err;
    }
    return { model, scheduler, autoencoder, autoencoderSource: { folder, dir } };
  } catch (err) {
    model.dispose();
    scheduler.dispose();
    throw err;
  }
}

function loadFolder(dir: string, latent: boolean): Pipeline {
  const { schedulerDir } = resolveModelFolder(dir);
  const ae = pipelineLayout(dir)?.autoencoder ?? null;
  if (ae && !latent)
    throw new PipelineError(
      `${dir} is a latent diffusion pipeline (its unet denoises the latents of ${ae.folder}/, a ${ae.className}); ` +
        `this reads models on pixels only, and the UNet alone would make latents, not images (diffprune sample, count, prune and finetune take latent pipelines)`,
    );
  const disposeAll: { dispose(): void }[] = [];
  try {
    const model = UNet2DModel.fromPretrained(dir);
    disposeAll.push(model);
    const scheduler = schedulerDir ? loadScheduler(schedulerDir) : new DDPMScheduler();
    disposeAll.push(scheduler);
    if (!ae) return { model, scheduler, autoencoder: null, autoencoderSource: null };
    const aeDir = join(dir, ae.folder);
    const autoencoder = autoencoderOf(ae.className, aeDir);
    disposeAll.push(autoencoder);
    checkLatentShapes(`${dir}: unet/config.json`, model, autoencoder, `${ae.folder}/`);
    return { model, scheduler, autoencoder, autoencoderSource: { folder: ae.folder, dir: aeDir } };
  } catch (err) {
    for (const m of disposeAll) m.dispose();
    throw err;
  }
}

const autoencoderOf = (className: AutoencoderClass, dir: string): Autoencoder => (className === "VQModel" ? VQModel.fromPretrained(dir) : AutoencoderKL.fromPretrained(dir));

/**
 * An autoencoder folder (AutoencoderKL or VQModel, as its config.json's _class_name says), or the
 * vae/ or vqvae/ of a pipeline folder; `folder` is where a pipeline keeps one of its class.
 */
export function loadAutoencoderFolder(path: string): { autoencoder: Autoencoder; folder: AutoencoderFolder; dir: string } {
  const dir = resolveComponentFolder(path, ["vae", "vqvae"]);
  const className = readConfig(dir)._class_name;
  if (className !== "VQModel" && className !== "AutoencoderKL")
    throw new PipelineError(`${join(dir, CONFIG_NAME)}: _class_name ${show(className)} is not an autoencoder diffprune has (VQModel, AutoencoderKL)`);
  return { autoencoder: autoencoderOf(className, dir), folder: className === "VQModel" ? "vqvae" : "vae", dir };
}

/** The UNet must take and predict the autoencoder's latents. */
function checkLatentShapes(unetConfig: string, model: UNet2DModel, ae: Autoencoder, aeDir: string): void {
  const c = model.config;
  const z = ae.latentChannels;
  if (c.in_channels !== z || c.out_channels !== z)
    throw new PipelineError(
      `${unetConfig} has in_channels ${c.in_channels} and out_channels ${c.out_channels}, but the latents of ${aeDir} have ${z} channels; ` +
        `the UNet of a latent pipeline takes and predicts the latents as they are`,
    );
}

/** Frees every model of a pipeline. */
export function disposePipeline(p: Pipeline): void {
  p.model.dispose();
  p.autoencoder?.dispose();
  p.scheduler.dispose();
}

/**
 * Writes `p` into `dir` (which exists and is empty): a pixel model as a model folder (config.json,
 * weights, scheduler_config.json); a latent pipeline as a pipeline folder (model_index.json, unet/,
 * scheduler/, and the autoencoder's folder copied byte for byte: it is never changed). `saveUNet`
 * writes the UNet's folder (default: its current weights).
 */
export function savePipeline(dir: string, p: Pipeline, saveUNet: (unetDir: string) => void = (d) => p.model.savePretrained(d)): void {
  const source = p.autoencoderSource;
  if (!p.autoencoder || !source) {
    saveUNet(dir);
    writeJsonAtomic(join(dir, SCHEDULER_CONFIG), p.scheduler.toJSON());
    return;
  }
  saveUNet(join(dir, "unet"));
  mkdirSync(join(dir, "scheduler"));
  const scheduler = p.scheduler.toJSON();
  writeJsonAtomic(join(dir, "scheduler", SCHEDULER_CONFIG), scheduler);
  copyFolder(source.dir, join(dir, source.folder));
  writeJsonAtomic(join(dir, MODEL_INDEX), {
    _class_name: "LDMPipeline",
    _diffusers_version: "0.17.0",
    scheduler: ["diffusers", scheduler._class_name],
    unet: ["diffusers", "UNet2DModel"],
    [source.folder]: ["diffusers", p.autoencoder.config._class_name],
  });
}

/** Copies the files of `from` (and its subfolders) into the new folder `to`, byte for byte. */
function copyFolder(from: string, to: string): void {
  mkdirSync(to);
  for (const name of readdirSync(from)) {
    const path = join(from, name);
    if (statSync(path).isDirectory()) copyFolder(path, join(to, name));
    else writeFileAtomic(join(to, name), readFileSync(path));
  }
}
