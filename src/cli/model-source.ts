// --model DIR or --config FILE: a trained checkpoint, or an architecture with random weights
// (to see what it costs before and after pruning without its checkpoint).
import { readFileSync } from "node:fs";
import * as torch from "../torch/index.js";
import { resolveModelFolder, resolveUNet2DConfig, UNet2DModel } from "../models/index.js";
import { DDPMScheduler, loadScheduler, type Scheduler } from "../diffusion/index.js";

export interface ModelSourceArgs {
  model?: string;
  config?: string;
  seed: number;
}

export function loadModelSource(args: ModelSourceArgs): { model: UNet2DModel; scheduler: Scheduler } {
  if (Boolean(args.model) === Boolean(args.config)) throw new Error("give either --model DIR (a diffusers model folder) or --config FILE (a config.json, weights drawn at random)");
  if (args.model) {
    const { schedulerDir } = resolveModelFolder(args.model);
    return { model: UNet2DModel.fromPretrained(args.model), scheduler: schedulerDir ? loadScheduler(schedulerDir) : new DDPMScheduler() };
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(args.config!, "utf8")) as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : err instanceof Error ? err.message : String(err);
    throw new Error(`cannot read --config ${args.config}: ${why}; --config takes a UNet2DModel config.json`);
  }
  const config = resolveUNet2DConfig(raw, args.config!);
  torch.manualSeed(args.seed);
  return { model: torch.noGrad(() => new UNet2DModel(config)).eval(), scheduler: new DDPMScheduler() };
}
