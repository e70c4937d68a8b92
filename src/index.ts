// diffprune's public API. Every layer is a namespace (torch, nn, models, ...); the names a
// pruning program needs most are also exported at the top level.
export * as torch from "./torch/index.js";
export * as nn from "./nn/index.js";
export * as io from "./io/index.js";
export * as models from "./models/index.js";
export * as diffusion from "./diffusion/index.js";
export * as data from "./data/index.js";
export * as pruning from "./pruning/index.js";
export * as metrics from "./metrics/index.js";
export * as report from "./report/index.js";

export { UNet2DModel, type UNet2DConfig } from "./models/index.js";
export { DDPMScheduler, DDIMScheduler, loadScheduler, generate, samplingScheduler, Trainer, denoisingLoss, type TrainOptions } from "./diffusion/index.js";
export { openDataset, DataLoader } from "./data/index.js";
export {
  pruneUNet,
  prune,
  countOpsAndParams,
  accumulateGradients,
  drawCalibration,
  loadCalibration,
  DependencyGraph,
  pruningGroups,
  unetForward,
  type UNetPruneOptions,
  type UNetPruneReport,
  type Criterion,
} from "./pruning/index.js";
export { evaluate, compareSamples, ClassifierExtractor, InceptionExtractor, measureLatency, type EvalReport } from "./metrics/index.js";
export { renderReport, type ReportInput, type ReportRow } from "./report/index.js";
