// Diffusion model architectures (diffusers-compatible) and their checkpoints.
export { UNet2DModel, PRUNED_HEADS_KEY } from "./unet2d.js";
export { resolveUNet2DConfig, ConfigError, UNET2D_DEFAULTS, type UNet2DConfig } from "./config.js";
export { resolveModelFolder, ModelFolderError, WEIGHTS_NAME, CONFIG_NAME } from "./checkpoint.js";
export { checkWeights, WeightsError } from "./weights.js";
export { countParams, estimateSize, whyTooLarge, type UNetSize } from "./size.js";
