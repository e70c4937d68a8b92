// The workflows of the paper, as a library: prune a model folder, fine-tune it, and compare the
// criteria end to end (prune, fine-tune, sample, measure, report). The CLI commands call these.
export { PRUNING_FILE, readPruningRecord, writePruningRecord, storedGradients, type PruningRecord, type StoredGradients } from "./record.js";
export { pruneModelFolder, checkPrunePaths, checkWouldPrune, pruneOutputReuse, SCHEDULER_FILE, type PruneFolderOptions } from "./prune.js";
export { finetune, recipe, runModelDir, RUN_CONFIG, snapshotDir, type FinetuneOptions, type FinetuneResult } from "./finetune.js";
export { runComparison, checkComparisonPaths, type ComparisonMetrics, type ComparisonHooks } from "./comparison.js";
export { comparisonPaths, PRETRAINED, SCRATCH, type ComparisonOptions, type ComparisonRow } from "./run-folder.js";
export { writeComparisonReport } from "./comparison-report.js";
export { runStudy, writeStudy, type StageEvent, type StudyHooks } from "./study.js";
export { baseTraining, budgetSteps, studyPaths, type StudyOptions } from "./study-folder.js";
export { assembleStudy, type StudyResult } from "./study-summary.js";
export { SHIPPED_STUDY, studyHeadline, studyPointer } from "./study-pointer.js";
export { summarize, pairedDifference, perImageDifference, type Summary } from "./study-stats.js";
export { convergence, convergenceChart, convergencePaths, CONVERGED_BELOW, lastQuarter, runSnapshots, type ConvergenceOptions, type ConvergencePoint, type ConvergenceResult } from "./convergence.js";
export { latentDataset, latentCachePath, encoderHash, LatentDataset, LatentTrainer, type LatentDataOptions } from "./latent-data.js";
export {
  trainAutoencoder,
  autoencoderLoss,
  reconstructionMetrics,
  latentScalingFactor,
  writeReconstructionGrid,
  AUTOENCODER_TRAIN_DEFAULTS,
  RECONSTRUCTION,
  type AutoencoderTrainOptions,
  type TrainAutoencoderOptions,
  type TrainAutoencoderResult,
  type ReconstructionMetrics,
} from "./train-autoencoder.js";
