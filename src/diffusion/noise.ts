// The initial noise of sampling: drawn from a seed, or read from a file so that two models (or
// two programs) start from the same noise, which is what the SSIM consistency compares.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { loadFile } from "../io/index.js";
import type { UNet2DModel } from "../models/index.js";

export interface NoiseSource {
  /** A safetensors file holding `noise` [N, C, H, W]; overrides `num` and `seed`. */
  file?: string | undefined;
  num: number;
  seed: number;
}

/** The initial noise for `model`: the file's `noise`, checked against the model's images, or `num` draws from `seed`. */
export function initialNoise(model: Pick<UNet2DModel, "config">, source: NoiseSource): Tensor {
  const c = model.config;
  const expected = [c.in_channels, c.sample_size, c.sample_size];
  const file = source.file;
  if (!file) {
    torch.manualSeed(source.seed);
    return torch.randn([source.num, ...expected]);
  }
  const tensors = loadFile(file);
  const fail = (message: string): never => {
    torch.dispose([...tensors.values()]);
    throw new Error(`${file}${message}`);
  };
  const noise = tensors.get("noise") ?? fail(` has no tensor named "noise" (it holds: ${[...tensors.keys()].join(", ") || "nothing"})`);
  if (noise.ndim !== 4 || noise.shape.slice(1).join() !== expected.join()) fail(`: noise has shape [${noise.shape.join(", ")}] but the model takes [N, ${expected.join(", ")}]`);
  if (noise.shape[0] === 0) fail(`: noise holds no samples (shape [${noise.shape.join(", ")}]); give at least one`);
  const values = noise.float();
  const bad = torch.tidy(() => values.isfinite().logicalNot().sum().item());
  torch.dispose([...tensors.values()].filter((t) => t !== values));
  if (bad > 0) {
    values.dispose();
    throw new Error(`${file}: noise holds ${bad} NaN or infinite values; initial noise must be finite (e.g. standard normal draws)`);
  }
  return values;
}
