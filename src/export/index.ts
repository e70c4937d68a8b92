// Deployment: ONNX export from the op trace (one emitter per op of OP_RULES), the file command's
// library call, and exported models run in onnxruntime.
export { exportDecoder, exportOnnx, exportUNet, AUTOENCODER_CONFIG_KEY, CLASS_LABELS_INPUT, OnnxExportError, OPSET, SCHEDULER_CONFIG_KEY, UNET_CONFIG_KEY, type ExportInput, type ExportSpec, type OnnxExport } from "./exporter.js";
export { ONNX_EMITTERS, type EmitContext, type Emitter } from "./emitters.js";
export { decoderPath, exportModelFile, type ExportFileOptions, type ExportFileReport, type ExportFormat } from "./file.js";
export { loadOnnxPipeline, OnnxSession, OnnxUNet, type OnnxSessionOptions } from "./runtime.js";
export { decodeMetadata } from "./proto.js";
