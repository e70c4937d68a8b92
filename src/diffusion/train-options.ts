// A training run's settings: their defaults, the ones a resumed run may change, and the state a
// checkpoint records, checked as it is read back (a damaged one is refused naming what is wrong).
import { parse } from "../io/index.js";

export interface TrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  /** Linear warm-up from 0 over this many steps, then `lrSchedule`. */
  warmupSteps: number;
  lrSchedule: "constant" | "cosine";
  adamBetas: [number, number];
  adamEps: number;
  weightDecay: number;
  /** Max gradient norm (clip_grad_norm_); 0 disables. */
  gradClip: number;
  ema: boolean;
  emaMaxDecay: number;
  emaInvGamma: number;
  emaPower: number;
  /** Random horizontal flips of training images. */
  flip: boolean;
  seed: number;
  checkpointEvery: number;
  /** Also a checkpoint once this many seconds of training have passed since the last; 0 disables. */
  checkpointSeconds: number;
  /** A sample grid (DDIM, `sampleSteps` steps, fixed noise) every N steps; 0 disables. */
  sampleEvery: number;
  sampleSteps: number;
  numSamples: number;
  /** A model folder of the shipped weights every N steps (snapshots/step-N, e.g. for an FID curve); 0 disables. */
  snapshotEvery: number;
  logEvery: number;
}

export const TRAIN_DEFAULTS: TrainOptions = {
  steps: 1000,
  batchSize: 64,
  lr: 1e-4,
  warmupSteps: 500,
  lrSchedule: "constant",
  adamBetas: [0.95, 0.999],
  adamEps: 1e-8,
  weightDecay: 1e-6,
  gradClip: 1,
  ema: true,
  emaMaxDecay: 0.9999,
  emaInvGamma: 1,
  emaPower: 3 / 4,
  flip: false,
  seed: 0,
  checkpointEvery: 500,
  checkpointSeconds: 120,
  sampleEvery: 0,
  sampleSteps: 50,
  numSamples: 16,
  snapshotEvery: 0,
  logEvery: 10,
};

/** Options a resumed run may change: they do not touch the optimisation (steps extends it). */
export const RESUMABLE_CHANGES = new Set<keyof TrainOptions>(["steps", "checkpointEvery", "checkpointSeconds", "sampleEvery", "sampleSteps", "numSamples", "snapshotEvery", "logEvery"]);

/** A checkpoint that cannot be resumed from: not one of ours, damaged, or holding NaN. */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** The counters and options a checkpoint's metadata holds. */
export interface TrainerState {
  step: number;
  ema_step: number;
  options: TrainOptions;
  /** The losses of the steps since the last log entry. */
  loss_window: number[];
}

const describe = (value: unknown): string => (value === undefined ? "missing" : `${JSON.stringify(value)?.slice(0, 40)}`);
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const sameKind = (value: unknown, like: unknown): boolean =>
  Array.isArray(like) ? Array.isArray(value) && value.length === like.length && value.every((x) => typeof x === "number") : typeof value === typeof like && value !== null;

/** The counters and options stored in a checkpoint's metadata, checked. */
export function checkpointState(bytes: Uint8Array, file: string): TrainerState {
  const text = parse(bytes, file).metadata.trainer_state;
  if (!text) throw new CheckpointError(`${file} is not a diffprune training checkpoint (no trainer_state): train into a new folder`);
  const damaged = (why: string) =>
    new CheckpointError(`${file}: trainer_state ${why}; the checkpoint is damaged: delete it to restart this run from step 0, or train into a new folder`);
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (err) {
    throw damaged(`is not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isRecord(state)) throw damaged(`is ${describe(state)}, not an object`);
  for (const key of ["step", "ema_step"])
    if (!Number.isSafeInteger(state[key]) || (state[key] as number) < 0) throw damaged(`${key} is ${describe(state[key])}, not a count of steps`);
  const options = state.options;
  if (!isRecord(options)) throw damaged(`options is ${describe(options)}, not an object`);
  for (const [key, like] of Object.entries(TRAIN_DEFAULTS) as [keyof TrainOptions, unknown][]) {
    if (RESUMABLE_CHANGES.has(key) && !(key in options)) continue; // a newer setting that a resumed run may set anyway
    if (!sameKind(options[key], like)) throw damaged(`options.${key} is ${describe(options[key])}, not ${Array.isArray(like) ? `${like.length} numbers` : `a ${typeof like}`}`);
  }
  const window = state.loss_window ?? []; // absent from checkpoints older than it
  if (!Array.isArray(window) || !window.every((x) => Number.isFinite(x))) throw damaged(`loss_window is ${describe(window)}, not a list of losses`);
  return { step: state.step as number, ema_step: state.ema_step as number, options: { ...TRAIN_DEFAULTS, ...options } as TrainOptions, loss_window: window as number[] };
}
