// Pruning a model folder, as ddpm_prune.py does it: load the model and its scheduler, draw the
// calibration batch for the gradient criteria, prune, and save a loadable folder (config.json,
// weights, scheduler config) with pruning.json, the record of what changed. A latent pipeline
// (ldm_prune.py's LDMPipeline) has its UNet pruned, its calibration images encoded to latents by
// its autoencoder, and is written as a pipeline folder again, the autoencoder copied unchanged.
import * as torch from "../torch/index.js";
import { OptionError, type OptionMessage, type OptionName } from "../io/index.js";
import { checkInputFiles, checkOutputs, onlyHolds, writeFolderAtomic } from "../io/paths.js";
import { CONFIG_NAME, WEIGHTS_NAME, type UNet2DModel } from "../models/index.js";
import { disposePipeline, encodeLatents, imageShape, loadPipeline, MODEL_INDEX, savePipeline, SCHEDULER_CONFIG, type Autoencoder, type ModelSource, type Pipeline } from "../diffusion/index.js";
import { datasetPath } from "../data/index.js";
import {
  channelsRemoved,
  asCriterion,
  DependencyGraph,
  drawCalibration,
  loadCalibration,
  pruneUNet,
  pruningGroups,
  unetForward,
  type Calibration,
  type Criterion,
  type ImportanceVariant,
} from "../pruning/index.js";
import { PRUNING_FILE, writePruningRecord, type PruningRecord } from "./record.js";
import { isMainProcess } from "./distributed.js";

export const SCHEDULER_FILE = SCHEDULER_CONFIG;

export interface PruneFolderOptions extends ModelSource {
  /** The criterion (one of CRITERIA, or its name). */
  method: Criterion | string;
  ratio: number;
  /** Diff-Pruning's threshold on loss_t / max loss (default 0.05). */
  thr?: number;
  /** Calibration images for the gradient criteria: a dataset spec ... */
  data?: string | undefined;
  /** ... or a safetensors file with `images` and `noise`. */
  calibration?: string | undefined;
  /** Images drawn from `data` (default 32). */
  calibBatch?: number;
  /** Seeds the calibration draw, the noise, random scores and `config`'s weights (default 0). */
  seed?: number;
  global?: boolean;
  roundTo?: number | null | undefined;
  maxRatio?: number;
  ignoredLayers?: string[];
  iterativeSteps?: number;
  pruneHeads?: boolean;
  importance?: ImportanceVariant;
  /** The folder written (replaced as a whole when it holds an earlier prune). */
  out: string;
  /** Write the model even when the options remove no channel (refused otherwise). */
  allowUnchanged?: boolean;
  /** A warning (its message names this function's options; the CLI renders it with flags). */
  onWarning?: (warning: OptionError) => void;
  /** The gradient loop's progress: timestep t done, its loss, the loop's bound. */
  onGradientStep?: (t: number, loss: number, total: number) => void;
}

/** What an earlier prune wrote (a model folder, or a pipeline folder); a folder holding only these (or nothing) may be replaced. */
const PRUNE_OUTPUT = new Set([CONFIG_NAME, WEIGHTS_NAME, SCHEDULER_FILE, PRUNING_FILE, MODEL_INDEX, "unet", "scheduler", "vqvae", "vae"]);

/** An existing output folder is replaced only when it is an earlier prune's output (or empty). */
export function pruneOutputReuse(names: string[]): string | null {
  if (names.length > 0 && !names.includes(PRUNING_FILE) && names.every((n) => PRUNE_OUTPUT.has(n)))
    return `the folder holds a model without ${PRUNING_FILE}, not one that prune wrote; choose a new or empty folder (it is replaced as a whole)`;
  return onlyHolds("a pruned model", (n) => PRUNE_OUTPUT.has(n))(names);
}

/** The read and written paths of a prune, checked before the model is loaded. */
export function checkPrunePaths(o: Pick<PruneFolderOptions, "model" | "config" | "calibration" | "data" | "out">): void {
  checkOutputs(
    [{ flag: "out", path: o.out, kind: "folder", reuse: pruneOutputReuse }],
    [
      { flag: "model", path: o.model },
      { flag: "config", path: o.config },
      { flag: "calibration", path: o.calibration },
      { flag: "data", path: datasetPath(o.data) },
    ],
  );
  checkInputFiles([
    { flag: "config", path: o.config },
    { flag: "calibration", path: o.calibration },
  ]);
}

const ACCEPT = (n: OptionName): string => `; or use ${n("allowUnchanged")} to write the model as it is`;

/**
 * Refuses options that would prune nothing, before the gradients are computed: ratio 0, or a
 * roundTo larger than every group. With allowUnchanged these become warnings; the groups that
 * roundTo leaves whole are always a warning.
 */
export function checkWouldPrune(model: UNet2DModel, o: Pick<PruneFolderOptions, "ratio" | "roundTo" | "maxRatio" | "pruneHeads" | "global" | "allowUnchanged" | "ignoredLayers">): OptionError[] {
  const refuseOrWarn = (describe: OptionMessage): OptionError[] => {
    if (!o.allowUnchanged) throw new OptionError((n) => describe(n) + ACCEPT(n));
    return [new OptionError((n) => `warning: ${describe(n)}; writing it anyway (${n("allowUnchanged")})`)];
  };
  const ratio = Math.min(o.ratio, o.maxRatio ?? 1);
  if (ratio === 0) return refuseOrWarn((n) => `${n("ratio")} 0 prunes nothing: give a ratio above 0`);
  const groups = [...pruningGroups(DependencyGraph.build(model, unetForward(model)), o.ignoredLayers ?? [])].filter((g) => g.blocked === null && g.channels > 1);
  if (groups.length === 0) return refuseOrWarn(() => `no group of channels can be pruned (every one is ignored or tied to the output)`);
  const roundTo = o.roundTo ?? null;
  const largest = Math.max(...groups.map((g) => g.channels));
  if (roundTo !== null && roundTo >= largest)
    return refuseOrWarn((n) => `${n("roundTo")} ${roundTo} is not below any group's channel count (the largest has ${largest}), so nothing would be pruned: use a smaller ${n("roundTo")}`);
  if (o.global) return [];
  const taken = groups.map((g) => channelsRemoved(g, ratio, { roundTo, pruneHeads: o.pruneHeads ?? false }));
  if (taken.every((k) => k === 0))
    return refuseOrWarn(
      (n) =>
        `${n("ratio")} ${o.ratio}${roundTo ? ` with ${n("roundTo")} ${roundTo}` : ""} removes no channel from any group (each keeps at least one channel${roundTo ? ` and a multiple of ${n("roundTo")}` : ""}): ` +
        `raise ${n("ratio")}${roundTo ? ` or lower ${n("roundTo")}` : ""}`,
    );
  const whole = roundTo === null ? [] : [...new Set(groups.filter((g) => g.channels <= roundTo).map((g) => g.channels))];
  return whole.length > 0 ? [new OptionError((n) => `warning: ${n("roundTo")} ${roundTo} leaves groups of ${whole.sort((a, b) => a - b).join(", ")} channels whole`)] : [];
}

/**
 * The calibration batch of `p`'s UNet: images (from `data` or the `calibration` file) and noise of
 * the UNet's input shape. A latent pipeline's batch holds its autoencoder's images, encoded here
 * to the latents the UNet denoises (encodeLatents: VQModel's encode(x) as LDMPipeline decodes it;
 * AutoencoderKL's posterior mean times scaling_factor), so the gradients are the UNet's own loss.
 */
function calibrationFor(o: PruneFolderOptions, p: Pipeline): { calibration: Calibration; source: string } | null {
  if (o.calibration && o.data) throw new OptionError((n) => `give either ${n("data")} SPEC or ${n("calibration")} FILE, not both`);
  const shape = imageShape(p.model, p.autoencoder);
  let calibration: Calibration;
  if (o.calibration) calibration = loadCalibration(o.calibration, p.model.config, shape);
  else if (o.data) calibration = drawCalibration(o.data, p.model.config, o.calibBatch ?? 32, o.seed ?? 0, shape);
  else return null;
  return { calibration: p.autoencoder ? encodeCalibration(p.autoencoder, calibration) : calibration, source: (o.calibration ?? o.data)! };
}

/** The batch with its images replaced by their latents (the images are freed). */
function encodeCalibration(ae: Autoencoder, calibration: Calibration): Calibration {
  const { mean, std } = encodeLatents(ae, calibration.images);
  std?.dispose();
  calibration.images.dispose();
  return { ...calibration, images: torch.keep(mean) };
}

/** Prunes the model of `o` with one criterion into the folder `o.out`; returns what pruning.json holds. */
export function pruneModelFolder(o: PruneFolderOptions): PruningRecord {
  const criterion = asCriterion(o.method);
  const start = Date.now();
  const seed = o.seed ?? 0;
  checkPrunePaths(o);
  const pipeline = loadPipeline({ model: o.model, config: o.config, seed }, { latent: true });
  const { model, scheduler, autoencoder, autoencoderSource } = pipeline;
  let calib: ReturnType<typeof calibrationFor> = null;
  try {
    const warnings = checkWouldPrune(model, o);
    for (const w of warnings) o.onWarning?.(w);
    if (criterion.gradients !== null) {
      calib = calibrationFor(o, pipeline);
      if (!calib)
        throw new OptionError((n) => `${n("method")} ${criterion.name} scores channels by gradients of the denoising loss: give ${n("data")} SPEC (e.g. fashion-mnist) or ${n("calibration")} FILE`);
    }
    torch.manualSeed(seed);
    const report = pruneUNet(model, {
      criterion,
      ratio: o.ratio,
      scheduler,
      calibration: calib?.calibration ?? null,
      thr: o.thr ?? 0.05,
      global: o.global ?? false,
      roundTo: o.roundTo ?? null,
      maxRatio: o.maxRatio ?? 1,
      ignoredLayers: o.ignoredLayers ?? [],
      iterativeSteps: o.iterativeSteps ?? 1,
      pruneHeads: o.pruneHeads ?? false,
      importance: o.importance ?? "diffusers",
      ...(o.onGradientStep ? { onGradientStep: o.onGradientStep } : {}),
    });
    if (report.after.params === report.before.params) {
      const what = `the options removed no channel (params ${report.before.params} before and after)`;
      if (!o.allowUnchanged) throw new OptionError((n) => `${what}: raise ${n("ratio")} or lower ${n("roundTo")}${ACCEPT(n)}`);
      if (!warnings.some((w) => w.message.includes("allowUnchanged"))) o.onWarning?.(new OptionError((n) => `warning: ${what}; writing it anyway (${n("allowUnchanged")})`));
    }
    const record: PruningRecord = {
      method: criterion.name,
      importance: report.importance,
      ratio: o.ratio,
      global: report.global,
      round_to: o.roundTo ?? null,
      max_ratio: o.maxRatio ?? 1,
      iterative_steps: o.iterativeSteps ?? 1,
      prune_heads: o.pruneHeads ?? false,
      ignored: o.ignoredLayers ?? [],
      seed,
      source: o.model ?? o.config!,
      calibration: calib ? { source: calib.source, batch: calib.calibration.images.shape[0] ?? 0 } : null,
      autoencoder: autoencoder && autoencoderSource ? { class_name: autoencoder.config._class_name, folder: autoencoderSource.folder } : null,
      params: { before: report.before.params, after: report.after.params },
      macs: { before: report.before.macs, after: report.after.macs },
      layers: report.layers,
      kept_whole: report.kept,
      history: report.history,
      gradients: report.gradients,
      seconds: (Date.now() - start) / 1000,
    };
    // The folder is built beside `out` and renamed into place: a reader sees the previous model
    // and record or the new ones, never a mix, and a failure leaves nothing. In a
    // torch.distributed group (the gradient loop shared) every rank pruned the same channels;
    // rank 0 writes, and every rank returns once it has.
    if (isMainProcess())
      writeFolderAtomic(o.out, (dir) => {
        savePipeline(dir, pipeline);
        writePruningRecord(dir, record);
      });
    if (torch.distributed.isInitialized()) torch.distributed.barrier();
    return record;
  } finally {
    disposePipeline(pipeline);
    calib?.calibration.images.dispose();
    calib?.calibration.noise.dispose();
    calib?.calibration.labels?.dispose();
  }
}
