// Diffusion: schedulers, the denoising loss, training and sampling.
export * from "./schedulers/index.js";
export { denoisingLoss } from "./loss.js";
export { generate, generateAsync, samplingScheduler, type AsyncDenoiser, type GenerateOptions, type SchedulerName } from "./sample.js";
export { Trainer, TrainingDivergedError, TRAIN_DEFAULTS, CHECKPOINT_NAME, learningRate, withWeights, checkpointState, type TrainOptions, type StepInfo, type TrainHooks } from "./train.js";
export { CheckpointError } from "./train-options.js";
export { RunLogError, LOG_NAME, readLossCurve } from "./run-log.js";
export { loadPipeline, type ModelSource, type Pipeline } from "./pipeline.js";
export { initialNoise, type NoiseSource } from "./noise.js";
