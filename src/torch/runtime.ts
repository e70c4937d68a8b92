// Process-wide settings of the engine: threads, the random seed, devices.
import { native } from "./native.js";

/** libtorch's version, e.g. "1.13.0". */
export const torchVersion: string = native.torchVersion;

/** Seeds the one generator every random op draws from (CPU, and every GPU). */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed(): the seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}

/** libtorch's intra-op threads (default: the cores available to this process, set when the addon loads). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export const getNumThreads = (): number => native.getNumThreads();

export const cuda = {
  isAvailable: (): boolean => native.cudaDeviceCount() > 0,
  deviceCount: (): number => native.cudaDeviceCount(),
  /** Waits for queued GPU work (for timing). */
  synchronize: (): void => native.cudaSynchronize(),
};
