// Diffusion model architectures (diffusers-compatible) and their checkpoints.
export { UNet2DModel, PRUNED_HEADS_KEY } from "./unet2d.js";
export { resolveUNet2DConfig, ConfigError, UNET2D_DEFAULTS, type UNet2DConfig, type ClassEmbedType } from "./config.js";
export { resolveModelFolder, resolveComponentFolder, ModelFolderError, WEIGHTS_NAME, CONFIG_NAME } from "./checkpoint.js";
export { checkWeights, WeightsError } from "./weights.js";
export { countParams, estimateSize, whyTooLarge, type UNetSize } from "./size.js";
export { VQModel, VQ_MODEL_FOLDERS } from "./vq-model.js";
export { AutoencoderKL, AUTOENCODER_KL_FOLDERS } from "./autoencoder-kl.js";
export { Encoder, Decoder, VectorQuantizer, diagonalGaussian, type DiagonalGaussianDistribution, type Quantized } from "./vae.js";
export {
  resolveVQModelConfig,
  resolveAutoencoderKLConfig,
  VQ_MODEL_DEFAULTS,
  AUTOENCODER_KL_DEFAULTS,
  type AutoencoderConfig,
  type VQModelConfig,
  type AutoencoderKLConfig,
} from "./autoencoder-config.js";
