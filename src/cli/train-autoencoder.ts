// `diffprune train-autoencoder`: trains the first stage of a latent diffusion model (an
// AutoencoderKL or VQModel folder) into a resumable run folder; `train --config unet.json
// --autoencoder <run>/model` then trains a latent UNet on its latents.
import type { Command } from "commander";
import { AUTOENCODER_TRAIN_DEFAULTS, trainAutoencoder } from "../workflow/index.js";
import { addOptimizationOptions, nonNegativeInt, nonNegativeNumber, positiveInt, optimizationOf, type OptimizationArgs } from "./args.js";
import { Progress } from "./progress.js";

interface TrainAutoencoderArgs extends OptimizationArgs {
  config?: string;
  model?: string;
  data: string;
  evalData?: string;
  out: string;
  klWeight: number;
  codebookWeight: number;
  gradClip: number;
  seed: number;
  checkpointEvery: number;
  sampleEvery: number;
  resume: boolean;
  json?: boolean;
}

export function trainAutoencoderAction(args: TrainAutoencoderArgs): void {
  let progress: Progress | null = null;
  const result = trainAutoencoder({
    config: args.config,
    model: args.model,
    data: args.data,
    evalData: args.evalData,
    out: args.out,
    resume: args.resume,
    train: {
      ...optimizationOf(args),
      klWeight: args.klWeight,
      codebookWeight: args.codebookWeight,
      gradClip: args.gradClip,
      seed: args.seed,
      checkpointEvery: args.checkpointEvery,
      sampleEvery: args.sampleEvery,
    },
    onResume: (step) => console.error(`resuming ${args.out} at step ${step}`),
    onStep: (step, total, loss) => {
      progress ??= new Progress("train-autoencoder", total, step - 1, "it");
      progress.update(step, `loss ${loss.toFixed(4)}`);
    },
    onEvent: (message) => (progress ? progress.note(message) : console.error(message)),
  });
  const r = result.reconstruction;
  if (args.json) return console.log(JSON.stringify({ out: args.out, model: result.modelDir, steps: result.steps, scaling_factor: result.scalingFactor, reconstruction: r }));
  console.log(`trained ${result.steps} steps; autoencoder in ${result.modelDir}`);
  console.log(`reconstruction of ${r.images} ${r.dataset} images: MSE ${r.mse.toExponential(3)}, PSNR ${r.psnr.toFixed(2)} dB, SSIM ${r.ssim.toFixed(4)}`);
  if (result.scalingFactor !== null) console.log(`scaling_factor ${result.scalingFactor.toFixed(5)} (1 / std of the latents)`);
}

export function registerTrainAutoencoder(program: Command): void {
  const d = AUTOENCODER_TRAIN_DEFAULTS;
  const cmd = program
    .command("train-autoencoder")
    .description("train a latent diffusion model's autoencoder (AutoencoderKL or VQModel) on images")
    .requiredOption("--data <spec>", "training images: fashion-mnist, folder:<path>, cifar10:<dir>")
    .requiredOption("--out <dir>", "run folder (checkpoint, log, model/, reconstruction.json)")
    .option("--config <file>", "an AutoencoderKL or VQModel config.json for a new model")
    .option("--model <dir>", "continue training this autoencoder folder")
    .option("--eval-data <spec>", "held-out images for the reconstruction metrics (default: the data's test split)");
  addOptimizationOptions(cmd, d)
    .option("--kl-weight <x>", "AutoencoderKL: weight of the KL term (latent-diffusion's kl_weight)", nonNegativeNumber, d.klWeight)
    .option("--codebook-weight <x>", "VQModel: weight of the codebook and commitment loss", nonNegativeNumber, d.codebookWeight)
    .option("--grad-clip <x>", "max gradient norm (0: off)", nonNegativeNumber, d.gradClip)
    .option("--seed <n>", "random seed", nonNegativeInt, d.seed)
    .option("--checkpoint-every <n>", "steps between checkpoints", positiveInt, d.checkpointEvery)
    .option("--sample-every <n>", "steps between reconstruction grids (0: off)", nonNegativeInt, d.sampleEvery)
    .option("--resume", "continue the run in --out from its checkpoint", false)
    .option("--json", "print the result as JSON when done")
    .action((args: TrainAutoencoderArgs) => trainAutoencoderAction(args));
}
