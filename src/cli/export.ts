// `diffprune export`: a model folder (pruned or not) as an ONNX file for onnxruntime and other runtimes.
import type { Command } from "commander";
import type { ModelSource } from "../diffusion/index.js";
import { exportModelFile, type ExportFormat } from "../export/index.js";
import { nonNegativeInt, oneOf } from "./args.js";

interface ExportArgs extends ModelSource {
  format: ExportFormat;
  out: string;
  json?: boolean;
}

export function exportAction(args: ExportArgs): void {
  const report = exportModelFile(args);
  if (args.json) return console.log(JSON.stringify(report));
  const mib = (report.bytes / 2 ** 20).toFixed(1);
  console.log(`${report.out}: ONNX opset ${report.opset}, ${report.nodes} nodes, ${report.params.toLocaleString("en-US")} parameters, ${mib} MiB`);
  if (report.decoder) console.log(`${report.decoder}: the latent pipeline's decoder (latents -> image)`);
}

export function registerExport(program: Command): void {
  program
    .command("export")
    .description("export a UNet (pruned or not) to ONNX: inputs sample and timestep, any batch size, config and scheduler in the metadata")
    .option("--model <dir>", "a diffusers model or pipeline folder (a latent pipeline also writes its decoder as FILE.decoder.onnx)")
    .option("--config <file>", "a UNet2DModel config.json instead of a checkpoint (weights drawn at random)")
    .option("--seed <n>", "seed of the random weights with --config", nonNegativeInt, 0)
    .option("--format <name>", "the file format: onnx", oneOf<ExportFormat>("onnx"), "onnx")
    .requiredOption("--out <file>", "the .onnx file to write")
    .option("--json", "print what was written as one JSON object")
    .action((args: ExportArgs) => exportAction(args));
}
