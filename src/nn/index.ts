// Neural-network building blocks, named as in torch.nn.
export { Module, ModuleList, StateDictError, type StateDict } from "./module.js";
export { Conv2d, type Conv2dOptions } from "./conv.js";
export { Linear } from "./linear.js";
export { Embedding } from "./embedding.js";
export { GroupNorm } from "./norm.js";
export { BatchNorm2d } from "./batch-norm.js";
export { SiLU, Dropout } from "./activation.js";
export { Attention, type AttentionOptions } from "./attention.js";
export { AdamW, type AdamWOptions } from "./adamw.js";
export { EMA, type EMAOptions } from "./ema.js";
