// The study's measurements: the shared inputs (sampling noise, the held-out batch, the real
// images' features), the held-out denoising loss per timestep band, samples from the shared
// noise, and FID and KID of samples against the real subset (with the real-vs-real floor).
import { existsSync } from "node:fs";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { encodePng, loadFile, makeGrid, saveFile, writeFileAtomic } from "../io/index.js";
import { writeFileMakingDirs } from "../io/paths.js";
import { DataLoader, openDataset } from "../data/index.js";
import type { UNet2DModel } from "../models/index.js";
import { denoisingLoss, type Scheduler } from "../diffusion/index.js";
import { ClassifierExtractor, evaluationSamples, extractFeatures, fitGaussian, frechetDistance, kernelInceptionDistance } from "../metrics/index.js";
import type { QualityResult, StudyOptions, StudyPaths } from "./study-folder.js";

/** Images denoised (and scored) at once. */
const BATCH = 64;

/** The held-out batch: images, noise, and per band one timestep per image (int64 [bands, N]). */
export interface Heldout {
  images: Tensor;
  noise: Tensor;
  timesteps: Tensor;
}

/**
 * Writes the inputs every model shares, when absent: the sampling noise (`numSamples` draws from
 * `noiseSeed`), and the held-out batch (`heldoutBatch` images of `heldoutData` in a seeded order,
 * fixed noise, and for band b = [bT/B, (b+1)T/B) a timestep per image drawn uniformly in it).
 */
export function writeSharedInputs(o: StudyOptions, paths: StudyPaths, model: UNet2DModel, scheduler: Scheduler): void {
  const c = model.config;
  const shape = [c.in_channels, c.sample_size, c.sample_size];
  if (!existsSync(paths.noise)) {
    torch.manualSeed(o.noiseSeed);
    torch.tidy(() => writeFileMakingDirs(paths.noise, (f) => saveFile({ noise: torch.randn([o.numSamples, ...shape]) }, f)));
  }
  if (existsSync(paths.heldout)) return;
  const dataset = openDataset(o.heldoutData, { sampleSize: c.sample_size, channels: c.in_channels });
  const n = Math.min(o.heldoutBatch, dataset.length);
  const { images } = new DataLoader(dataset, { batchSize: n, seed: o.noiseSeed }).batch(0, 0);
  const T = scheduler.numTrainTimesteps;
  torch.manualSeed(o.noiseSeed + 1);
  torch.tidy(() => {
    const noise = torch.randn([n, ...shape]);
    const timesteps = torch.stack(
      bandEdges(T, o.bands).map(([lo, hi]) => torch.randint(lo, hi, [n])),
      0,
    );
    saveFile({ images, noise, timesteps }, paths.heldout);
  });
  images.dispose();
}

/** The bands [lo, hi) of `bands` equal parts of timesteps 0..T-1 (fewer when T is smaller). */
export function bandEdges(T: number, bands: number): [number, number][] {
  const b = Math.min(bands, T);
  return Array.from({ length: b }, (_, i): [number, number] => [Math.floor((i * T) / b), Math.floor(((i + 1) * T) / b)]);
}

export function loadHeldout(paths: StudyPaths): Heldout {
  const t = loadFile(paths.heldout);
  return { images: t.get("images")!, noise: t.get("noise")!, timesteps: t.get("timesteps")! };
}

/** The mean denoising loss of `model` on the held-out batch, per band (eval mode, no gradients). */
export function bandLosses(model: UNet2DModel, scheduler: Scheduler, h: Heldout): number[] {
  const n = h.images.shape[0]!;
  const wasTraining = model.training;
  model.eval();
  try {
    return Array.from({ length: h.timesteps.shape[0]! }, (_, b) => {
      let sum = 0;
      for (let i = 0; i < n; i += BATCH) {
        const k = Math.min(BATCH, n - i);
        sum +=
          k *
          torch.noGrad(() =>
            torch.tidy(() => denoisingLoss(model, scheduler, h.images.narrow(0, i, k), h.noise.narrow(0, i, k), h.timesteps.select(0, b).narrow(0, i, k)).item()),
          );
      }
      return sum / n;
    });
  } finally {
    model.train(wasTraining);
  }
}

/** DDIM (eta 0) samples of `model` from the first `count` rows of the shared noise, 8-bit as saved. */
export function sampleShared(o: StudyOptions, paths: StudyPaths, model: UNet2DModel, scheduler: Scheduler, count: number, onStep?: (done: number, total: number) => void): Tensor {
  const noise = loadFile(paths.noise).get("noise")!;
  try {
    return torch.tidy(() =>
      evaluationSamples(model, null, scheduler, noise.narrow(0, 0, Math.min(count, noise.shape[0]!)), {
        steps: o.samplingSteps,
        skip: o.skip,
        batchSize: BATCH,
        ...(onStep ? { onStep } : {}),
      }),
    );
  } finally {
    noise.dispose();
  }
}

/** The first `count` pretrained samples (the reference of every SSIM). */
export function pretrainedSamples(paths: StudyPaths, count: number): Tensor {
  const all = loadFile(paths.pretrainedSamples).get("samples")!;
  const first = torch.tidy(() => all.narrow(0, 0, Math.min(count, all.shape[0]!)).clone());
  all.dispose();
  return first;
}

/** grid.png of the first 64 samples. */
export function writeGrid(file: string, samples: Tensor): void {
  writeFileMakingDirs(file, (f) => writeFileAtomic(f, torch.tidy(() => encodePng(makeGrid(samples.narrow(0, 0, Math.min(64, samples.shape[0]!)), 8)))));
}

/** The shipped classifier reads 1x32x32 images; FID and KID are measured only for such models. */
export const qualityApplies = (model: UNet2DModel): boolean => model.config.in_channels === 1 && model.config.sample_size === 32;

/** What the real reference and the floor depend on (the study's options, or the convergence curve's). */
export type RealOptions = Pick<StudyOptions, "data" | "numSamples" | "noiseSeed" | "kidSubsets" | "kidSubsetSize">;

/**
 * Classifier features of 2 x numSamples real images of `data` in a seeded order: the first half
 * is the reference every model is compared with, the second the floor's other real subset.
 * Returns the floor (FID and KID between the halves), which a perfect model would score.
 */
export function writeRealFeatures(o: RealOptions, file: string, onProgress?: (done: number, total: number) => void): QualityResult {
  const dataset = openDataset(o.data, { sampleSize: 32, channels: 1 });
  const n = o.numSamples;
  if (2 * n > dataset.length)
    throw new Error(`${o.data} has ${dataset.length} images; the real-vs-real floor needs two disjoint subsets of ${n} (the samples per model): lower the samples per model`);
  const extractor = ClassifierExtractor.load();
  try {
    const { images } = new DataLoader(dataset, { batchSize: 2 * n, seed: o.noiseSeed }).batch(0, 0);
    const features = extractFeatures(images, extractor, onProgress ? { onProgress } : {});
    images.dispose();
    const [reference, other] = [features.narrow(0, 0, n), features.narrow(0, n, n)];
    const floor = quality(other, reference, o);
    torch.tidy(() => writeFileMakingDirs(file, (f) => saveFile({ reference: reference.contiguous(), other: other.contiguous() }, f)));
    torch.dispose([features, reference, other]);
    return floor;
  } finally {
    extractor.model.dispose();
  }
}

/** FID (Frechet distance of Gaussian fits) and KID of features against the reference features. */
export function quality(features: Tensor, reference: Tensor, o: Pick<StudyOptions, "kidSubsets" | "kidSubsetSize" | "noiseSeed">): QualityResult {
  const [a, b] = [fitGaussian(features), fitGaussian(reference)];
  try {
    const kid = kernelInceptionDistance(features, reference, { subsets: o.kidSubsets, subsetSize: o.kidSubsetSize, seed: o.noiseSeed });
    return { fid: frechetDistance(a, b), kid: kid.kid, kid_std: kid.std };
  } finally {
    torch.dispose([a.mu, a.sigma, b.mu, b.sigma]);
  }
}

/** FID and KID of samples against the real reference subset (nulls when the classifier cannot read them). */
export function sampleQuality(o: RealOptions, realFeatures: string, model: UNet2DModel, samples: Tensor): QualityResult {
  if (!qualityApplies(model)) return { fid: null, kid: null, kid_std: null };
  const extractor = ClassifierExtractor.load();
  const real = loadFile(realFeatures);
  const reference = real.get("reference")!;
  real.get("other")?.dispose();
  try {
    const features = extractFeatures(samples, extractor);
    try {
      return quality(features, reference, o);
    } finally {
      features.dispose();
    }
  } finally {
    reference.dispose();
    extractor.model.dispose();
  }
}
