// Wall-clock latency of one UNet evaluation (one sampling step), the number that tells whether
// fewer MACs became less time. Warm-up runs first (oneDNN picks and caches kernels, the heap
// settles), then the median of several timed runs, which shrugs off a stray slow run.
import * as torch from "../torch/index.js";
import type { UNet2DModel } from "../models/index.js";

export interface LatencyOptions {
  /** Batch sizes to time; default [1, 64] (one image, and a sampling batch). */
  batchSizes?: number[];
  /** Untimed runs before timing, per batch size; default 2. */
  warmup?: number;
  /** Timed runs, per batch size; default 5. */
  repeats?: number;
  /** The timestep fed to the model; default 500 (the cost does not depend on it). */
  timestep?: number;
}

export interface Latency {
  batchSize: number;
  /** Median milliseconds per evaluation of the whole batch. */
  medianMs: number;
  /** Every timed run, in order. */
  runsMs: number[];
}

export const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Milliseconds per UNet evaluation at each batch size (eval mode, no gradients). */
export function measureLatency(model: UNet2DModel, options: LatencyOptions = {}): Latency[] {
  const { batchSizes = [1, 64], warmup = 2, repeats = 5, timestep = 500 } = options;
  if (!(repeats >= 1)) throw new RangeError(`measureLatency: repeats must be at least 1, got ${repeats}`);
  const c = model.config;
  const wasTraining = model.training;
  model.eval();
  try {
    return batchSizes.map((batchSize) =>
      torch.noGrad(() =>
        torch.tidy(() => {
          const x = torch.randn([batchSize, c.in_channels, c.sample_size, c.sample_size]);
          const t = torch.full([batchSize], timestep, { dtype: "int64" });
          // a class-conditional model's forward embeds its classes too: timed with them
          const labels = model.exampleClassLabels(batchSize);
          const runsMs: number[] = [];
          for (let i = 0; i < warmup + repeats; i++) {
            const start = performance.now();
            torch.tidy(() => model.forward(x, t, labels).dispose());
            if (i >= warmup) runsMs.push(performance.now() - start);
          }
          return { batchSize, medianMs: median(runsMs), runsMs };
        }),
      ),
    );
  } finally {
    model.train(wasTraining);
  }
}
