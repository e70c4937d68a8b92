// Evaluation: SSIM and consistency, FID (Frechet distance over pluggable feature extractors),
// and latency.
export * from "./ssim.js";
export * from "./frechet.js";
export type { FeatureExtractor } from "./extractors/extractor.js";
export { bilinearMatrix, resizeBilinear } from "./extractors/resize.js";
export * from "./extractors/classifier.js";
export { InceptionV3, InceptionExtractor, inceptionStateDict } from "./extractors/inception.js";
export * from "./stats-cache.js";
export * from "./fid.js";
export * from "./latency.js";
export * from "./consistency.js";
export * from "./classifier-training.js";
export * from "./evaluate.js";
export * from "./bootstrap.js";
export * from "./kid.js";
