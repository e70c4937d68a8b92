// `diffprune count`: params and MACs of a model (Torch-Pruning's rules, batch 1), overall and per
// layer. A latent pipeline's UNet runs every sampling step and its decoder once per image: both
// are reported, each with its own figures.
import type { Command } from "commander";
import * as torch from "../torch/index.js";
import { disposePipeline, loadPipeline, type Autoencoder, type ModelSource } from "../diffusion/index.js";
import { VQModel } from "../models/index.js";
import { countOpsAndParams, unetForward, type Cost } from "../pruning/index.js";
import { nonNegativeInt } from "./args.js";
import { formatCount } from "./format.js";

interface CountArgs extends ModelSource {
  json?: boolean;
  layers?: boolean;
}

/**
 * The decoder's cost of one image: MACs of decode at batch 1 on latents of the UNet's shape
 * (unquantized: the codebook lookup costs no MACs), params of post_quant_conv and the Decoder.
 */
function decoderCost(ae: Autoencoder, latent: { channels: number; size: number }): Cost {
  const z = torch.zeros([1, latent.channels, latent.size, latent.size]);
  const cost = countOpsAndParams(ae, () => (ae instanceof VQModel ? ae.decode(z, { forceNotQuantize: true }) : ae.decode(z)));
  z.dispose();
  return { ...cost, params: ae.postQuantConv.numParameters() + ae.decoder.numParameters() };
}

const line = (cost: Cost, per: string): string =>
  `params ${cost.params.toLocaleString("en-US")} (${formatCount(cost.params, "M")})  MACs ${cost.macs.toLocaleString("en-US")} (${formatCount(cost.macs, "G")}) ${per}`;

function printLayers(cost: Cost): void {
  const width = Math.max(...cost.layers.map((l) => l.name.length));
  for (const l of cost.layers) console.log(`${l.name.padEnd(width)}  ${l.op.padEnd(9)}  params ${String(l.params).padStart(9)}  MACs ${String(l.macs).padStart(12)}`);
}

export function countAction(args: CountArgs): void {
  const pipeline = loadPipeline(args, { latent: true });
  try {
    const { model, autoencoder } = pipeline;
    const cost = countOpsAndParams(model, unetForward(model));
    const decoder = autoencoder ? decoderCost(autoencoder, { channels: model.config.in_channels, size: model.config.sample_size }) : null;
    if (args.json) {
      const out: Record<string, unknown> = { params: cost.params, macs: cost.macs };
      if (args.layers) out.layers = cost.layers;
      if (decoder) out.decoder = { params: decoder.params, macs: decoder.macs, ...(args.layers ? { layers: decoder.layers } : {}) };
      console.log(JSON.stringify(out));
      return;
    }
    if (args.layers) printLayers(cost);
    if (!decoder) {
      console.log(line(cost, "per image"));
      return;
    }
    if (args.layers) printLayers(decoder);
    const folder = pipeline.autoencoderSource?.folder ?? "autoencoder";
    console.log(`unet     ${line(cost, "per sampling step")}`);
    console.log(`decoder  ${line(decoder, `once per image (${folder}/, ${autoencoder!.config._class_name}: post_quant_conv and Decoder)`)}`);
  } finally {
    disposePipeline(pipeline);
  }
}

export function registerCount(program: Command): void {
  program
    .command("count")
    .description("count a UNet's parameters and MACs per image (Torch-Pruning's rules, as the paper reports them); a latent pipeline's decoder too")
    .option("--model <dir>", "a diffusers model or pipeline folder (a latent pipeline: the UNet per step, the decoder once)")
    .option("--config <file>", "a UNet2DModel config.json instead of a checkpoint (weights drawn at random)")
    .option("--seed <n>", "seed of the random weights with --config", nonNegativeInt, 0)
    .option("--layers", "also list every layer")
    .option("--json", 'print {"params": N, "macs": N} as JSON (a latent pipeline adds "decoder": {"params", "macs"})')
    .action((args: CountArgs) => countAction(args));
}
