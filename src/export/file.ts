// `diffprune export` as a library call: load a model folder (or a config with random weights),
// export it with its scheduler's config, and write the file atomically.
import { OptionError, writeFileAtomic } from "../io/index.js";
import { checkOutputs, writeFileMakingDirs } from "../io/paths.js";
import { disposePipeline, loadPipeline, type ModelSource } from "../diffusion/index.js";
import { exportDecoder, exportUNet } from "./exporter.js";

export type ExportFormat = "onnx";

export interface ExportFileOptions extends ModelSource {
  /** The file to write. */
  out: string;
  /** Default "onnx", the one format. */
  format?: ExportFormat;
}

export interface ExportFileReport {
  out: string;
  /** A latent pipeline's decoder, written beside `out` (`<name>.decoder.onnx`); null for a model on pixels. */
  decoder: string | null;
  format: ExportFormat;
  opset: number;
  bytes: number;
  nodes: number;
  params: number;
}

/** Where a latent pipeline's decoder goes: `x.onnx` -> `x.decoder.onnx`. */
export const decoderPath = (out: string): string => `${out.replace(/\.onnx$/i, "")}.decoder.onnx`;

/**
 * Exports a UNet2DModel folder (pruned or not) to `out`, with its config and scheduler in the
 * file's metadata; for a latent pipeline also its decoder, to decoderPath(out).
 */
export function exportModelFile(options: ExportFileOptions): ExportFileReport {
  const { out, format = "onnx" } = options;
  if (format !== "onnx") throw new OptionError((n) => `${n("format")} ${String(format)} is not an export format; the one format is onnx`);
  const inputs = [{ flag: "model", path: options.model }, { flag: "config", path: options.config }];
  checkOutputs([{ flag: "out", path: out, kind: "file" }], inputs);
  const pipeline = loadPipeline(options, { latent: true });
  const { model, autoencoder } = pipeline;
  try {
    if (autoencoder) checkOutputs([{ flag: "out", path: decoderPath(out), kind: "file" }], inputs);
    const exported = exportUNet(model, { scheduler: pipeline.scheduler });
    const decoder = autoencoder ? exportDecoder(autoencoder, model.config.sample_size) : null;
    writeFileMakingDirs(out, (path) => writeFileAtomic(path, exported.bytes));
    if (decoder) writeFileAtomic(decoderPath(out), decoder.bytes);
    return {
      out,
      decoder: decoder ? decoderPath(out) : null,
      format,
      opset: exported.opset,
      bytes: exported.bytes.length,
      nodes: exported.nodes,
      params: model.numParameters(),
    };
  } finally {
    disposePipeline(pipeline);
  }
}
