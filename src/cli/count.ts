// `diffprune count`: params and MACs of a model (Torch-Pruning's rules, batch 1), overall and per layer.
import type { Command } from "commander";
import { loadPipeline, type ModelSource } from "../diffusion/index.js";
import { countOpsAndParams, unetForward } from "../pruning/index.js";
import { nonNegativeInt } from "./args.js";
import { formatCount } from "./format.js";

interface CountArgs extends ModelSource {
  json?: boolean;
  layers?: boolean;
}

export function countAction(args: CountArgs): void {
  const { model } = loadPipeline(args);
  try {
    const cost = countOpsAndParams(model, unetForward(model));
    if (args.json) {
      const out: Record<string, unknown> = { params: cost.params, macs: cost.macs };
      if (args.layers) out.layers = cost.layers;
      console.log(JSON.stringify(out));
      return;
    }
    if (args.layers) {
      const width = Math.max(...cost.layers.map((l) => l.name.length));
      for (const l of cost.layers) console.log(`${l.name.padEnd(width)}  ${l.op.padEnd(9)}  params ${String(l.params).padStart(9)}  MACs ${String(l.macs).padStart(12)}`);
    }
    console.log(`params ${cost.params.toLocaleString("en-US")} (${formatCount(cost.params, "M")})  MACs ${cost.macs.toLocaleString("en-US")} (${formatCount(cost.macs, "G")}) per image`);
  } finally {
    model.dispose();
  }
}

export function registerCount(program: Command): void {
  program
    .command("count")
    .description("count a UNet's parameters and MACs per image (Torch-Pruning's rules, as the paper reports them)")
    .option("--model <dir>", "a diffusers model or pipeline folder")
    .option("--config <file>", "a UNet2DModel config.json instead of a checkpoint (weights drawn at random)")
    .option("--seed <n>", "seed of the random weights with --config", nonNegativeInt, 0)
    .option("--layers", "also list every layer")
    .option("--json", 'print {"params": N, "macs": N} as JSON')
    .action((args: CountArgs) => countAction(args));
}
