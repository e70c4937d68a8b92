// `diffprune train-classifier`: trains the Fashion-MNIST classifier whose penultimate layer is
// the FID feature space, and writes its weights and test accuracy.
import type { Command } from "commander";
import { saveClassifier, trainClassifier } from "../metrics/index.js";
import { CLASSIFIER_INFO, CLASSIFIER_WEIGHTS } from "../metrics/extractors/classifier.js";
import { checkOutputs, onlyHolds, writeFolderAtomic } from "../io/paths.js";
import { learningRate, nonNegativeInt, positiveInt } from "./args.js";
import { Progress } from "./progress.js";

interface TrainClassifierArgs {
  out: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  limit?: number;
  testLimit?: number;
}

export function trainClassifierAction(args: TrainClassifierArgs): void {
  const owns = (n: string) => n === CLASSIFIER_WEIGHTS || n === CLASSIFIER_INFO;
  checkOutputs([{ flag: "--out", path: args.out, kind: "folder", reuse: onlyHolds(`a classifier (${CLASSIFIER_WEIGHTS}, ${CLASSIFIER_INFO})`, owns) }]);
  const progress = new Progress("train-classifier", 1, 0, "step");
  const result = trainClassifier({
    epochs: args.epochs,
    batchSize: args.batchSize,
    lr: args.lr,
    seed: args.seed,
    ...(args.limit !== undefined ? { trainLimit: args.limit } : {}),
    ...(args.testLimit !== undefined ? { testLimit: args.testLimit } : {}),
    onStep: (step, total, loss) => {
      progress.total = total;
      progress.update(step, `loss ${loss.toFixed(4)}`);
    },
  });
  writeFolderAtomic(args.out, (dir) => saveClassifier(result, dir));
  console.log(`test accuracy ${(100 * result.testAccuracy).toFixed(2)}% on ${result.testImages} images; weights in ${args.out}`);
}

export function registerTrainClassifier(program: Command): void {
  program
    .command("train-classifier")
    .description("train the Fashion-MNIST classifier used as the FID feature extractor")
    .requiredOption("--out <dir>", "output folder (model.safetensors, classifier.json)")
    .option("--epochs <n>", "training epochs", positiveInt, 4)
    .option("--batch-size <n>", "batch size", positiveInt, 128)
    .option("--lr <x>", "peak learning rate (AdamW, warm-up then cosine), in (0, 1]", learningRate(), 2e-3)
    .option("--seed <n>", "random seed", nonNegativeInt, 0)
    .option("--limit <n>", "train on the first N training images (default: all)", positiveInt)
    .option("--test-limit <n>", "score on the first N test images (default: all)", positiveInt)
    .action((args: TrainClassifierArgs) => trainClassifierAction(args));
}
