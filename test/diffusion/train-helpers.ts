// A tiny UNet, a tiny dataset and a Trainer over them, for the training tests.
import * as torch from "../../src/torch/index.js";
import { Uint8ImageDataset } from "../../src/data/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler, Trainer, type TrainOptions } from "../../src/diffusion/index.js";

export const CONFIG = {
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D"] as ["DownBlock2D", "AttnDownBlock2D"],
  up_block_types: ["AttnUpBlock2D", "UpBlock2D"] as ["AttnUpBlock2D", "UpBlock2D"],
  norm_num_groups: 4,
  attention_head_dim: null,
};

/** 32 8x8 images: bright squares at different places on a dark background. */
export function squares(): Uint8ImageDataset {
  const data = new Uint8Array(32 * 64);
  for (let i = 0; i < 32; i++) {
    const r = i % 5;
    const c = Math.floor(i / 5) % 5;
    for (let y = r; y < r + 4; y++) for (let x = c; x < c + 4; x++) data[i * 64 + y * 8 + x] = 255;
  }
  return new Uint8ImageDataset(data, { count: 32, channels: 1, height: 8, width: 8 }, { sampleSize: 8, channels: 1 });
}

/** A trainer of a freshly initialised tiny UNet (the same weights every time). */
export function trainer(dir: string, options: Partial<TrainOptions>): Trainer {
  torch.manualSeed(7);
  const model = torch.noGrad(() => new UNet2DModel(CONFIG));
  return new Trainer(model, new DDPMScheduler(), squares(), dir, { batchSize: 8, lr: 2e-3, warmupSteps: 10, numSamples: 4, sampleSteps: 5, ...options });
}

/** A trainer's model and state, both freed. */
export function close(t: Trainer): void {
  t.model.dispose();
  t.dispose();
}

export function* zip<A, B>(a: Iterable<A>, b: Iterable<B>): Generator<[A, B]> {
  const ib = b[Symbol.iterator]();
  for (const x of a) yield [x, ib.next().value as B];
}

/** The log without its wall-clock times. */
export const timeless = (log: string): string => log.replace(/"time":"[^"]*"/g, "");
