// pruning.json: what a prune did, written beside the pruned model and read back by the workflow
// (a resumed comparison, the report). This module alone reads and writes it; on disk its keys
// are snake_case, as config.json's are.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/index.js";
import type { GradientReport, ImportanceVariant, UNetPruneReport } from "../pruning/index.js";

export const PRUNING_FILE = "pruning.json";

export interface PruningRecord {
  method: string;
  importance: ImportanceVariant;
  ratio: number;
  global: boolean;
  round_to: number | null;
  max_ratio: number;
  iterative_steps: number;
  prune_heads: boolean;
  ignored: string[];
  seed: number;
  /** The model folder or config file pruned. */
  source: string;
  calibration: { source: string; batch: number } | null;
  /**
   * A latent pipeline's autoencoder (its class and folder), copied unchanged; the calibration
   * images were encoded by it. Null (or absent, in records from before latent pipelines) for a model on pixels.
   */
  autoencoder?: { class_name: string; folder: string } | null;
  params: { before: number; after: number };
  macs: { before: number; after: number };
  layers: UNetPruneReport["layers"];
  kept_whole: UNetPruneReport["kept"];
  /** Groups in the order they were pruned, with the root's channels each removed (Torch-Pruning's pruning history). */
  history: UNetPruneReport["history"];
  /** The gradient loop of taylor and diff-pruning (stored as `diff_pruning`, with `t_prime`). */
  gradients: GradientReport | null;
  seconds: number;
}

/** The gradient loop as pruning.json (and the comparison's metrics.json) store it. */
export interface StoredGradients {
  thr: number | null;
  losses: number[];
  t_prime: number;
  timesteps: number;
}

export const storedGradients = (g: GradientReport | null): StoredGradients | null => (g ? { thr: g.thr, losses: g.losses, t_prime: g.tPrime, timesteps: g.timesteps } : null);

const gradientReport = (g: StoredGradients | null): GradientReport | null => (g ? { thr: g.thr, losses: g.losses, tPrime: g.t_prime, timesteps: g.timesteps } : null);

type Stored = Omit<PruningRecord, "gradients"> & { diff_pruning: StoredGradients | null };

export function writePruningRecord(dir: string, record: PruningRecord): void {
  const { gradients: g, ...rest } = record;
  const stored: Stored = { ...rest, diff_pruning: storedGradients(g) };
  writeJsonAtomic(join(dir, PRUNING_FILE), stored);
}

/** The record in `dir`, or null when there is none. */
export function readPruningRecord(dir: string): PruningRecord | null {
  const file = join(dir, PRUNING_FILE);
  if (!existsSync(file)) return null;
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(file, "utf8")) as Stored;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)}); delete the folder to prune again`);
  }
  const { diff_pruning: g, ...rest } = stored;
  return { ...rest, gradients: gradientReport(g) };
}
