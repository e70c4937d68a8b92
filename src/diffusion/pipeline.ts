// A model and its training schedule, loaded the same way by every command (as diffusers'
// DiffusionPipeline.from_pretrained): a model folder (config.json + weights, the scheduler's
// config beside it) or a pipeline folder (unet/, scheduler/); or an architecture's config.json
// with weights drawn at random, to see what it costs before and after pruning.
import { readFileSync } from "node:fs";
import * as torch from "../torch/index.js";
import { OptionError } from "../io/index.js";
import { resolveModelFolder, resolveUNet2DConfig, UNet2DModel } from "../models/index.js";
import { DDPMScheduler, loadScheduler, type Scheduler } from "./schedulers/index.js";

export interface ModelSource {
  /** A diffusers model or pipeline folder. */
  model?: string | undefined;
  /** A UNet2DModel config.json instead (weights drawn at random from `seed`). */
  config?: string | undefined;
  seed?: number;
}

export interface Pipeline {
  model: UNet2DModel;
  /** The folder's scheduler, or diffusers' DDPMScheduler defaults when it has none. */
  scheduler: Scheduler;
}

/** Loads `model` (with its folder's scheduler) or builds `config` at random, in eval mode. */
export function loadPipeline(source: ModelSource): Pipeline {
  if (Boolean(source.model) === Boolean(source.config))
    throw new OptionError((n) => `give either ${n("model")} DIR (a diffusers model folder) or ${n("config")} FILE (a config.json, weights drawn at random)`);
  if (source.model) {
    const { schedulerDir } = resolveModelFolder(source.model);
    const model = UNet2DModel.fromPretrained(source.model);
    try {
      return { model, scheduler: schedulerDir ? loadScheduler(schedulerDir) : new DDPMScheduler() };
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
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
  return { model: torch.noGrad(() => new UNet2DModel(config)).eval(), scheduler: new DDPMScheduler() };
}
