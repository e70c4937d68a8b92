// diffprune's public API. Every layer is a namespace (torch, nn, models, ..., workflow); the names
// a pruning program needs most are also exported at the top level.
export * as torch from "./torch/index.js";
export * as nn from "./nn/index.js";
export * as io from "./io/index.js";
export * as models from "./models/index.js";
export * as diffusion from "./diffusion/index.js";
export * as data from "./data/index.js";
export * as pruning from "./pruning/index.js";
export * as metrics from "./metrics/index.js";
export * as report from "./report/index.js";
export * as onnx from "./export/index.js";
export * as workflow from "./workflow/index.js";

export { UNet2DModel, type UNet2DConfig } from "./models/index.js";
export {
  DDPMScheduler,
  DDIMScheduler,
  loadScheduler,
  loadPipeline,
  initialNoise,
  generate,
  samplingScheduler,
  Trainer,
  denoisingLoss,
  type TrainOptions,
  type Pipeline,
} from "./diffusion/index.js";
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
  CRITERIA,
  criterionNamed,
  type Criterion,
} from "./pruning/index.js";
export { evaluate, compareSamples, ClassifierExtractor, InceptionExtractor, measureLatency, type EvalReport } from "./metrics/index.js";
export { renderReport, type ReportInput, type ReportRow } from "./report/index.js";
export { pruneModelFolder, finetune, runComparison, readPruningRecord, type PruningRecord, type PruneFolderOptions, type ComparisonOptions } from "./workflow/index.js";
