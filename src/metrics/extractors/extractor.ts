// What FID needs from a network: features of a batch of images, and an identity for the cache.
import type { Tensor } from "../../torch/index.js";

export interface FeatureExtractor {
  /** The name metrics.json reports ("fmnist-classifier", "inception-v3-fid"). */
  readonly name: string;
  /** Feature dimensions D. */
  readonly featureDim: number;
  /** sha256 of the weights file, so cached dataset statistics follow the weights. */
  readonly weightsHash: string;
  /** The image shape it takes [C, H, W], or null for any size (it resizes). */
  readonly inputShape: readonly [number, number, number] | null;
  /** Features [N, D] (float32) of images [N, C, H, W] in [-1, 1]; no gradients. */
  features(images: Tensor): Tensor;
}
