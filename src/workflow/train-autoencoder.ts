// Training the first stage of a latent diffusion model: an autoencoder (AutoencoderKL or VQModel)
// trained on images alone, as latent-diffusion's autoencoder configs do without their perceptual
// and adversarial terms (which need a pretrained LPIPS network we cannot download):
// - AutoencoderKL: L1 reconstruction of a posterior sample + kl_weight x KL(q(z|x) || N(0, I)),
//   the sums per image of LDM's LPIPSWithDiscriminator divided by the pixels per image;
// - VQModel: L1 reconstruction of the quantized latents + codebook_weight x the codebook and
//   commitment loss.
// AdamW with warm-up, the run resumable from its checkpoint (the draws of step k depend only on
// (seed, k)). When done, an AutoencoderKL's scaling_factor is set to 1 / std of its latents on
// the training data (as Stable Diffusion's 0.18215 was chosen), so the UNet sees unit-variance
// latents, and the reconstruction of held-out images is measured (MSE, PSNR, SSIM).
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { AdamW } from "../nn/index.js";
import { load, makeGrid, OptionError, parse, saveFile, writeJsonAtomic, writePng } from "../io/index.js";
import { checkOutputs, makeDirs, writeFileMakingDirs, writeFolderAtomic } from "../io/paths.js";
import { DataLoader, datasetPath, openDataset, type ImageDataset } from "../data/index.js";
import { AutoencoderKL, resolveAutoencoderKLConfig, resolveVQModelConfig, VQModel } from "../models/index.js";
import { writeModelFolder } from "../models/checkpoint.js";
import { learningRate, loadAutoencoderFolder, LOG_NAME, stepName, stepSeed, type Autoencoder } from "../diffusion/index.js";
import { appendLogEntry, trimRunLog } from "../diffusion/run-log.js";
import { ssim } from "../metrics/index.js";

export interface AutoencoderTrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  lrSchedule: "constant" | "cosine";
  weightDecay: number;
  /** AutoencoderKL: weight of the KL term (latent-diffusion's kl_weight). */
  klWeight: number;
  /** VQModel: weight of the codebook and commitment loss (latent-diffusion's codebook_weight). */
  codebookWeight: number;
  /** Max gradient norm; 0 disables. */
  gradClip: number;
  seed: number;
  checkpointEvery: number;
  logEvery: number;
  /** A grid of images and their reconstructions every N steps; 0 disables. */
  sampleEvery: number;
}

export const AUTOENCODER_TRAIN_DEFAULTS: AutoencoderTrainOptions = {
  steps: 3000,
  batchSize: 64,
  lr: 1e-3,
  warmupSteps: 100,
  lrSchedule: "cosine",
  weightDecay: 0,
  klWeight: 1e-6,
  codebookWeight: 1,
  gradClip: 1,
  seed: 0,
  checkpointEvery: 500,
  logEvery: 10,
  sampleEvery: 0,
};

/** Options a resumed run may change. */
const RESUMABLE = new Set<keyof AutoencoderTrainOptions>(["steps", "checkpointEvery", "logEvery", "sampleEvery"]);

export const AE_CHECKPOINT = "checkpoint.safetensors";
export const AE_RUN_CONFIG = "autoencoder_config.json";
export const RECONSTRUCTION = "reconstruction.json";

/** The parts of one step's loss (each a scalar). */
export interface AutoencoderLoss {
  total: Tensor;
  /** Mean absolute error per pixel. */
  reconstruction: Tensor;
  /** KL per image divided by its pixels (AutoencoderKL), or the codebook loss (VQModel). */
  regularizer: Tensor;
}

/** The training loss of `ae` on images `x` in [-1, 1] (KL: a posterior sample drawn from torch's generator). */
export function autoencoderLoss(ae: Autoencoder, x: Tensor, o: Pick<AutoencoderTrainOptions, "klWeight" | "codebookWeight">): AutoencoderLoss {
  return torch.tidy(() => {
    const pixels = x.shape[1]! * x.shape[2]! * x.shape[3]!;
    if (ae instanceof VQModel) {
      const q = ae.quantizeLatents(ae.encode(x));
      const reconstruction = ae.decode(q.quantized, { forceNotQuantize: true }).sub(x).abs().mean();
      return { total: reconstruction.add(q.loss.mul(o.codebookWeight)), reconstruction, regularizer: q.loss };
    }
    const posterior = ae.encode(x);
    const reconstruction = ae.decode(posterior.sample()).sub(x).abs().mean();
    const regularizer = posterior.kl().mean().div(pixels);
    return { total: reconstruction.add(regularizer.mul(o.klWeight)), reconstruction, regularizer };
  });
}

export interface ReconstructionMetrics {
  images: number;
  dataset: string;
  /** On images scaled to [0, 1]. */
  mse: number;
  psnr: number;
  ssim: number;
}

/** How well `ae` reconstructs the first `limit` images of `dataset` (the posterior's mode; VQ: quantized). */
export function reconstructionMetrics(ae: Autoencoder, dataset: ImageDataset, spec: string, { limit = 2000, batchSize = 100 } = {}): ReconstructionMetrics {
  const n = Math.min(limit, dataset.length);
  let se = 0;
  let s = 0;
  ae.eval();
  for (let i = 0; i < n; i += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, n - i) }, (_, k) => i + k);
    const [batchSe, batchSsim] = torch.noGrad(() =>
      torch.tidy(() => {
        const x = dataset.getBatch(indices).add(1).div(2);
        const y = reconstruct(ae, dataset.getBatch(indices)).add(1).div(2).clamp(0, 1);
        return [y.sub(x).square().mean([1, 2, 3]).sum().item(), ssim(y, x).sum().item()];
      }),
    );
    se += batchSe;
    s += batchSsim;
  }
  const mse = se / n;
  return { images: n, dataset: spec, mse, psnr: 10 * Math.log10(1 / mse), ssim: s / n };
}

/** decode(encode(x)) with the posterior's mode (KL) or the codebook (VQ). */
function reconstruct(ae: Autoencoder, x: Tensor): Tensor {
  return torch.tidy(() => (ae instanceof VQModel ? ae.forward(x) : ae.decode(ae.encode(x).mode())));
}

/** 1 / std of an AutoencoderKL's posterior samples of the first `limit` images (Stable Diffusion's recipe for scaling_factor). */
export function latentScalingFactor(ae: AutoencoderKL, dataset: ImageDataset, { limit = 2000, batchSize = 100, seed = 0 } = {}): number {
  const n = Math.min(limit, dataset.length);
  torch.manualSeed(seed);
  let sum = 0;
  let sumSq = 0;
  let count = 0;
  for (let i = 0; i < n; i += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, n - i) }, (_, k) => i + k);
    const [a, b, c] = torch.noGrad(() =>
      torch.tidy(() => {
        const z = ae.encode(dataset.getBatch(indices)).sample().double();
        return [z.sum().item(), z.square().sum().item(), z.numel];
      }),
    );
    sum += a;
    sumSq += b;
    count += c;
  }
  const mean = sum / count;
  return 1 / Math.sqrt(sumSq / count - mean * mean);
}

export interface TrainAutoencoderOptions {
  /** A VQModel or AutoencoderKL config.json for a new model (weights from `train.seed`)... */
  config?: string | undefined;
  /** ...or an autoencoder folder to continue from. */
  model?: string | undefined;
  /** Training images (a dataset spec); the model's sample_size and in_channels. */
  data: string;
  /** Held-out images for the reconstruction metrics (default: the data's test split when it has one, else the data). */
  evalData?: string | undefined;
  /** The run folder: checkpoint, log.jsonl, samples/, autoencoder_config.json, model/ and reconstruction.json when done. */
  out: string;
  train?: Partial<AutoencoderTrainOptions>;
  resume?: boolean;
  onResume?: (step: number) => void;
  onStep?: (step: number, total: number, loss: number) => void;
  onEvent?: (message: string) => void;
}

export interface TrainAutoencoderResult {
  modelDir: string;
  steps: number;
  /** AutoencoderKL: the scaling_factor set (1 / std of the latents); VQModel: null (LDMPipeline does not scale). */
  scalingFactor: number | null;
  reconstruction: ReconstructionMetrics;
}

function buildAutoencoder(o: TrainAutoencoderOptions, seed: number): Autoencoder {
  if (Boolean(o.model) === Boolean(o.config))
    throw new OptionError((n) => `give either ${n("config")} FILE (a VQModel or AutoencoderKL config.json) or ${n("model")} DIR (an autoencoder folder)`);
  if (o.model) return loadAutoencoderFolder(o.model).autoencoder;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(o.config!, "utf8")) as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : err instanceof Error ? err.message : String(err);
    throw new OptionError((n) => `cannot read ${n("config")} ${o.config}: ${why}; it takes a VQModel or AutoencoderKL config.json`);
  }
  torch.manualSeed(seed);
  if (raw._class_name === "VQModel") return torch.noGrad(() => new VQModel(resolveVQModelConfig(raw, o.config!)));
  if (raw._class_name === "AutoencoderKL") return torch.noGrad(() => new AutoencoderKL(resolveAutoencoderKLConfig(raw, o.config!)));
  throw new OptionError((n) => `${n("config")} ${o.config}: _class_name is ${JSON.stringify(raw._class_name)}; an autoencoder's is "AutoencoderKL" or "VQModel"`);
}

/** The default held-out split of a dataset spec. */
const heldOut = (spec: string): string => (spec === "fashion-mnist" ? "fashion-mnist:test" : spec);

/** Trains (or continues) an autoencoder into the run folder `o.out`; its model/ holds the result. */
export function trainAutoencoder(o: TrainAutoencoderOptions): TrainAutoencoderResult {
  const options = { ...AUTOENCODER_TRAIN_DEFAULTS, ...o.train };
  for (const key of ["steps", "batchSize", "checkpointEvery", "logEvery"] as const)
    if (!Number.isInteger(options[key]) || options[key] < 1) throw new RangeError(`train-autoencoder: ${key} must be a positive integer, got ${options[key]}`);
  checkOutputs(
    [{ flag: "out", path: o.out, kind: "folder", inPlace: true, reuse: (names) => (names.length === 0 || names.includes(AE_RUN_CONFIG) ? null : "the folder is not empty and holds no autoencoder run; choose a new or empty folder") }],
    [
      { flag: "model", path: o.model },
      { flag: "config", path: o.config },
      { flag: "data", path: datasetPath(o.data) },
    ],
  );
  const checkpoint = join(o.out, AE_CHECKPOINT);
  if (existsSync(checkpoint) && !o.resume)
    throw new OptionError((n) => `${o.out} already holds an autoencoder run: use ${n("resume")} to continue it, or choose another ${n("out")}`);
  const ae = buildAutoencoder(o, options.seed);
  const c = ae.config;
  const evalSpec = o.evalData ?? heldOut(o.data);
  let data: ImageDataset;
  let evalSet: ImageDataset;
  try {
    data = openDataset(o.data, { sampleSize: c.sample_size, channels: c.in_channels });
    evalSet = evalSpec === o.data ? data : openDataset(evalSpec, { sampleSize: c.sample_size, channels: c.in_channels });
  } catch (err) {
    ae.dispose();
    throw err;
  }
  const params = ae.parameters();
  const optimizer = new AdamW(params, { lr: options.lr, weightDecay: options.weightDecay });
  const loader = new DataLoader(data, { batchSize: options.batchSize, seed: options.seed, dropLast: true });
  const created = makeDirs(o.out);
  let step = 0;
  try {
    if (o.resume && existsSync(checkpoint)) {
      step = loadCheckpoint(checkpoint, ae, optimizer, options);
      o.onResume?.(step);
    }
    writeJsonAtomic(join(o.out, AE_RUN_CONFIG), { ...options, data: o.data, model_config: c, params: ae.numParameters() });
  } catch (err) {
    if (created.length > 0) rmSync(created[0]!, { recursive: true, force: true });
    optimizer.dispose();
    ae.dispose();
    throw err;
  }
  const log = join(o.out, LOG_NAME);
  const torn = trimRunLog(log, step);
  if (torn) o.onEvent?.(torn);
  const firstIndices = (n: number) => Array.from({ length: Math.min(n, evalSet.length) }, (_, i) => i);
  const preview = firstIndices(8);
  try {
    let window: number[] = [];
    while (step < options.steps) {
      const { epoch, position } = loader.locate(step);
      torch.manualSeed(stepSeed(options.seed, step));
      ae.train();
      const lr = learningRate(options, step);
      const { loss, norm } = torch.tidy(() => {
        const batch = loader.batch(epoch, position);
        const l = autoencoderLoss(ae, batch.images, options);
        l.total.backward();
        const norm = options.gradClip > 0 ? torch.clipGradNorm(params, options.gradClip) : NaN;
        const loss = l.total.item();
        if (!Number.isFinite(loss) || (options.gradClip > 0 && !Number.isFinite(norm)))
          throw new OptionError((n) => `train-autoencoder diverged at step ${step + 1} (loss ${loss}, gradient norm ${norm}); train again with a lower ${n("lr")} (${options.lr} here)`);
        optimizer.lr = lr;
        optimizer.step();
        optimizer.zeroGrad();
        return { loss, norm };
      });
      step += 1;
      window.push(loss);
      o.onStep?.(step, options.steps, loss);
      if (step % options.logEvery === 0 || step === options.steps) {
        appendLogEntry(log, { step, loss: window.reduce((a, b) => a + b, 0) / window.length, lr, grad_norm: norm, time: new Date().toISOString() });
        window = [];
      }
      if (options.sampleEvery > 0 && (step % options.sampleEvery === 0 || step === options.steps)) {
        const file = join(o.out, "samples", `${stepName(step)}.png`);
        writeReconstructionGrid(ae, evalSet, preview, file);
        o.onEvent?.(`reconstructions: ${file}`);
      }
      if (step % options.checkpointEvery === 0 || step === options.steps) {
        saveCheckpoint(checkpoint, ae, optimizer, options, step);
        o.onEvent?.(`checkpoint at step ${step}`);
      }
    }
    ae.eval();
    const config: Record<string, unknown> = { ...c };
    if (ae instanceof AutoencoderKL) config.scaling_factor = latentScalingFactor(ae, data, { seed: options.seed });
    const modelDir = join(o.out, "model");
    writeFolderAtomic(modelDir, (dir) => writeModelFolder(dir, config, ae.stateDict()));
    writeReconstructionGrid(ae, evalSet, firstIndices(16), join(o.out, "reconstruction.png"));
    const reconstruction = reconstructionMetrics(ae, evalSet, evalSpec);
    writeJsonAtomic(join(o.out, RECONSTRUCTION), reconstruction);
    return { modelDir, steps: step, scalingFactor: ae instanceof AutoencoderKL ? (config.scaling_factor as number) : null, reconstruction };
  } finally {
    optimizer.dispose();
    ae.dispose();
  }
}

/** Images (top rows) above their reconstructions (bottom rows), one PNG. */
export function writeReconstructionGrid(ae: Autoencoder, dataset: ImageDataset, indices: number[], file: string): void {
  const wasTraining = ae.training;
  ae.eval();
  try {
    torch.noGrad(() =>
      torch.tidy(() => {
        const x = dataset.getBatch(indices);
        writeFileMakingDirs(file, (path) => writePng(path, makeGrid(torch.cat([x, reconstruct(ae, x).clamp(-1, 1)], 0), indices.length)));
      }),
    );
  } finally {
    ae.train(wasTraining);
  }
}

function saveCheckpoint(file: string, ae: Autoencoder, optimizer: AdamW, options: AutoencoderTrainOptions, step: number): void {
  const tensors = new Map<string, Tensor>();
  for (const [name, p] of ae.namedParameters()) tensors.set(`model.${name}`, p);
  for (const [k, t] of optimizer.stateDict()) tensors.set(`optimizer.${k}`, t);
  saveFile(tensors, file, { autoencoder_trainer_state: JSON.stringify({ step, options }) });
}

/** Restores a checkpoint; returns its step. The optimisation settings must be the saved ones. */
function loadCheckpoint(file: string, ae: Autoencoder, optimizer: AdamW, options: AutoencoderTrainOptions): number {
  const bytes = readFileSync(file);
  const text = parse(bytes, file).metadata.autoencoder_trainer_state;
  if (!text) throw new Error(`${file} is not an autoencoder training checkpoint (no autoencoder_trainer_state): train into a new folder`);
  const state = JSON.parse(text) as { step: number; options: AutoencoderTrainOptions };
  const differing = (Object.keys(options) as (keyof AutoencoderTrainOptions)[]).filter((k) => !RESUMABLE.has(k) && JSON.stringify(state.options[k]) !== JSON.stringify(options[k]));
  if (differing.length > 0)
    throw new Error(`${file} was written with other settings (${differing.map((k) => `${k}: ${JSON.stringify(state.options[k])}`).join(", ")}); resume with the same settings or train into a new folder`);
  const tensors = load(bytes, file);
  try {
    const model = new Map<string, Tensor>();
    const opt = new Map<string, Tensor>();
    for (const [k, t] of tensors) {
      if (k.startsWith("model.")) model.set(k.slice(6), t);
      else if (k.startsWith("optimizer.")) opt.set(k.slice(10), t);
    }
    ae.loadStateDict(model);
    optimizer.loadStateDict(opt, state.step);
  } finally {
    torch.dispose([...tensors.values()]);
  }
  return state.step;
}
