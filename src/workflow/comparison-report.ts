// report.html of a comparison run: the results table, the sample grids side by side, the
// fine-tuning curves, Diff-Pruning's loss by timestep, and the channels each criterion kept.
import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { writeFileAtomic } from "../io/index.js";
import { readLossCurve, LOG_NAME } from "../diffusion/index.js";
import type { GradientReport } from "../pruning/index.js";
import { renderReport, type ReportRow } from "../report/index.js";
import { comparisonPaths, type ComparisonOptions, type ComparisonRow } from "./run-folder.js";
import type { PruningRecord } from "./record.js";

/** A path as the user would type it: relative to the working folder when inside it. */
export const displayPath = (p: string): string => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : p;
};

export function writeComparisonReport(o: ComparisonOptions, results: ComparisonRow[], gradients: GradientReport | null, records: Map<string, PruningRecord>, extraNotes: string[] = []): void {
  const paths = comparisonPaths(o);
  const rows: ReportRow[] = results.map((r) => {
    const grid = join(paths.method(r.name), "grid.png");
    const log = join(paths.finetune(r.name), LOG_NAME);
    const curve = existsSync(log) ? readLossCurve(log) : [];
    return {
      name: r.name,
      params: r.params,
      macs: r.macs,
      fid: r.fid,
      fidExtractor: r.fid_extractor,
      ssim: r.ssim,
      ssimCi95: r.ssim_ci95 ?? null,
      finetuneSteps: r.finetune_steps,
      latencyMs: r.latency_ms_batch1,
      speedup: r.speedup_batch1,
      samples: existsSync(grid) ? new Uint8Array(readFileSync(grid)) : null,
      ...(curve.length > 0 ? { lossCurve: curve } : {}),
    };
  });
  const first = [...records.values()][0];
  const layers = first
    ? first.layers.map((l) => ({ name: l.name, before: l.out[0], after: Object.fromEntries([...records].map(([m, rec]) => [m, rec.layers.find((x) => x.name === l.name)?.out[1] ?? l.out[0]])) }))
    : null;
  const html = renderReport({
    title: "Diff-Pruning: pruned and fine-tuned models against the pretrained one",
    subtitle: `${displayPath(o.model)} on ${o.data}, ratio ${o.ratio}, ${o.finetuneSteps} fine-tuning steps at batch ${o.batchSize}; ${o.numSamples} samples, DDIM ${o.samplingSteps} steps (skip ${o.skip}) from the same noise`,
    rows,
    diffPruning: gradients,
    layers,
    notes: [
      "FID: Frechet distance of the shipped Fashion-MNIST classifier's features (not Inception), samples vs the training set.",
      `SSIM: against the pretrained model's samples from the same initial noise (DDIM, eta 0, skip ${o.skip}${o.skip === "uniform" || o.skip === "quad" ? ": the paper's sampler" : ""}), images in [0, 1]; one seed (${o.seed}), ${o.numSamples} images.`,
      "Latency: median ms per UNet evaluation at batch 1 on this machine; speed-up = pretrained / pruned.",
      `MACs per image by Torch-Pruning's counting rules. Command: diffprune demo --out ${o.out}`,
      ...extraNotes,
    ],
  });
  writeFileAtomic(join(o.out, "report.html"), html);
}
