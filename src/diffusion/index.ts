// Diffusion: schedulers, the denoising loss, training and sampling.
export * from "./schedulers/index.js";
export { denoisingLoss } from "./loss.js";
export * from "./class-labels.js";
export { generate, generateAsync, samplingScheduler, type AsyncDenoiser, type GenerateOptions, type SchedulerName } from "./sample.js";
export { Trainer, TrainingDivergedError, TRAIN_DEFAULTS, CHECKPOINT_NAME, learningRate, stepSeed, withWeights, checkpointState, type TrainOptions, type StepInfo, type TrainHooks } from "./train.js";
export { CheckpointError } from "./train-options.js";
export { RunLogError, LOG_NAME, readLossCurve, stepName } from "./run-log.js";
export {
  loadPipeline,
  loadAutoencoderFolder,
  pipelineLayout,
  disposePipeline,
  savePipeline,
  PipelineError,
  MODEL_INDEX,
  SCHEDULER_CONFIG,
  type ModelSource,
  type Pipeline,
  type LoadPipelineOptions,
  type Autoencoder,
  type AutoencoderFolder,
} from "./pipeline.js";
export { generateImages, encodeLatents, decodeLatents, imageShape, type LatentPosterior } from "./latent.js";
export { initialNoise, type NoiseSource } from "./noise.js";
