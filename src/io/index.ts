// File formats and safe writes: safetensors checkpoints, PNG/JPEG images, atomic files.
export { writeFileAtomic, writeFileAtomicAsync, writeJsonAtomic } from "./atomic.js";
export {
  parse,
  serialize,
  load,
  loadFile,
  saveFile,
  SafetensorsError,
  type Parsed,
  type SafetensorsDType,
  type TensorInfo,
} from "./safetensors.js";
export {
  decodeImage,
  readImage,
  encodePng,
  writePng,
  imageFromTensor,
  tensorFromImage,
  makeGrid,
  type Image,
} from "./png.js";
export { packageRoot } from "./package-root.js";
export { OptionError, type OptionMessage, type OptionName } from "./option-error.js";
