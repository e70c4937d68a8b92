// `diffprune export` as a library call: load a model folder (or a config with random weights),
// export it with its scheduler's config, and write the file atomically.
import { OptionError, writeFileAtomic } from "../io/index.js";
import { checkOutputs, writeFileMakingDirs } from "../io/paths.js";
import { loadPipeline, type ModelSource } from "../diffusion/index.js";
import { exportUNet } from "./exporter.js";

export type ExportFormat = "onnx";

export interface ExportFileOptions extends ModelSource {
  /** The file to write. */
  out: string;
  /** Default "onnx", the one format. */
  format?: ExportFormat;
}

export interface ExportFileReport {
  out: string;
  format: ExportFormat;
  opset: number;
  bytes: number;
  nodes: number;
  params: number;
}

/** Exports a UNet2DModel folder (pruned or not) to `out`, with its config and scheduler in the file's metadata. */
export function exportModelFile(options: ExportFileOptions): ExportFileReport {
  const { out, format = "onnx" } = options;
  if (format !== "onnx") throw new OptionError((n) => `${n("format")} ${String(format)} is not an export format; the one format is onnx`);
  checkOutputs([{ flag: "out", path: out, kind: "file" }], [{ flag: "model", path: options.model }, { flag: "config", path: options.config }]);
  const { model, scheduler } = loadPipeline(options);
  try {
    const exported = exportUNet(model, { scheduler });
    writeFileMakingDirs(out, (path) => writeFileAtomic(path, exported.bytes));
    return { out, format, opset: exported.opset, bytes: exported.bytes.length, nodes: exported.nodes, params: model.numParameters() };
  } finally {
    model.dispose();
    scheduler.dispose();
  }
}
