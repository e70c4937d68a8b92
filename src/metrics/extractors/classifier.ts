// A small CNN trained by the project on Fashion-MNIST (padded to 32x32): its 128-d penultimate
// layer is the feature space for FID on Fashion-MNIST, where Inception-v3 (an ImageNet network
// on 299x299 RGB) sees little that matters. Three conv-BN-ReLU-maxpool stages (32, 64, 128
// channels: 32 -> 16 -> 8 -> 4), fc1 2048 -> 128 + ReLU (the features), fc2 128 -> 10 (logits).
// 356,458 parameters: 1.4 MB of float32 weights, shipped in models/fmnist-classifier.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { BatchNorm2d, Conv2d, Linear, Module } from "../../nn/index.js";
import type { FeatureExtractor } from "./extractor.js";
import { readWeights } from "./weights.js";
import { packageRoot } from "../../io/index.js";

export const CLASSIFIER_WEIGHTS = "model.safetensors";
export const CLASSIFIER_INFO = "classifier.json";
export const CLASSIFIER_FEATURES = 128;

/** The shipped classifier's folder: models/fmnist-classifier in the package. */
export function defaultClassifierDir(): string {
  return join(packageRoot(), "models", "fmnist-classifier");
}

export class FashionMnistClassifier extends Module {
  readonly conv1 = this.registerModule("conv1", new Conv2d(1, 32, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule("bn1", new BatchNorm2d(32));
  readonly conv2 = this.registerModule("conv2", new Conv2d(32, 64, 3, { padding: 1, bias: false }));
  readonly bn2 = this.registerModule("bn2", new BatchNorm2d(64));
  readonly conv3 = this.registerModule("conv3", new Conv2d(64, 128, 3, { padding: 1, bias: false }));
  readonly bn3 = this.registerModule("bn3", new BatchNorm2d(128));
  readonly fc1 = this.registerModule("fc1", new Linear(128 * 4 * 4, CLASSIFIER_FEATURES));
  readonly fc2 = this.registerModule("fc2", new Linear(CLASSIFIER_FEATURES, 10));

  /** The penultimate activations [N, 128] of images [N, 1, 32, 32] in [-1, 1]. */
  features(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== 1 || x.shape[2] !== 32 || x.shape[3] !== 32)
      throw new Error(
        `the Fashion-MNIST classifier takes images [N, 1, 32, 32], got [${x.shape.join(", ")}]; ` +
          `for other image shapes use the Inception-v3 extractor (InceptionExtractor)`,
      );
    return torch.tidy(() => {
      let h = torch.maxPool2d(this.bn1.forward(this.conv1.forward(x)).relu(), 2);
      h = torch.maxPool2d(this.bn2.forward(this.conv2.forward(h)).relu(), 2);
      h = torch.maxPool2d(this.bn3.forward(this.conv3.forward(h)).relu(), 2);
      return this.fc1.forward(h.flatten(1)).relu();
    });
  }

  /** Class logits [N, 10]. */
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.fc2.forward(this.features(x)));
  }

  /** Loads `dir`/model.safetensors (default: the shipped weights), in eval mode. */
  static load(dir = defaultClassifierDir()): { model: FashionMnistClassifier; sha256: string } {
    const file = join(dir, CLASSIFIER_WEIGHTS);
    if (!existsSync(file))
      throw new Error(`no classifier weights at ${file}: train them with \`diffprune train-classifier --out ${dir}\``);
    const { tensors, sha256 } = readWeights(file, "Fashion-MNIST classifier");
    const model = torch.noGrad(() => new FashionMnistClassifier());
    try {
      model.loadStateDict(tensors);
    } catch (err) {
      model.dispose();
      throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      torch.dispose([...tensors.values()]);
    }
    return { model: model.eval(), sha256 };
  }
}

/** The classifier's penultimate layer as a FID feature extractor. */
export class ClassifierExtractor implements FeatureExtractor {
  readonly name = "fmnist-classifier";
  readonly featureDim = CLASSIFIER_FEATURES;
  readonly inputShape = [1, 32, 32] as const;
  readonly model: FashionMnistClassifier;
  readonly weightsHash: string;

  constructor(model: FashionMnistClassifier, weightsHash: string) {
    this.model = model;
    this.weightsHash = weightsHash;
  }

  /** The classifier in `dir` (default: the shipped one). */
  static load(dir?: string): ClassifierExtractor {
    const { model, sha256 } = FashionMnistClassifier.load(dir);
    return new ClassifierExtractor(model, sha256);
  }

  features(images: Tensor): Tensor {
    return torch.noGrad(() => this.model.features(images));
  }
}
