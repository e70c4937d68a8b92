// Timing helpers shared by the benchmarks. The machines are noisy, so figures are medians over
// several repeats, taken after warm-up calls (allocator, oneDNN primitive cache, JIT).
import { spawn, spawnSync, type ChildProcessByStdio } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import * as torch from "../src/torch/index.js";
import { AdamW } from "../src/nn/index.js";
import type { UNet2DModel } from "../src/models/index.js";
import { DDPMScheduler, denoisingLoss } from "../src/diffusion/index.js";

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median(): no values");
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Sample {
  /** Wall seconds per call. */
  seconds: number;
  /**
   * Minor page faults per call (whole process). On these VMs a fault costs ~20 us, so buffers
   * that malloc maps and unmaps on every call can cost more than the kernel itself.
   */
  faults: number;
}

/** Runs `fn` `iters` times; returns the cost per call. */
export function timeRepeat(fn: () => void, iters: number): Sample {
  const f0 = process.resourceUsage().minorPageFault;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) fn();
  const seconds = (performance.now() - t0) / 1000 / iters;
  return { seconds, faults: (process.resourceUsage().minorPageFault - f0) / iters };
}

/** Prints a progress line to stderr, so stdout stays one JSON object. */
export const progress = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

/** Rounds for JSON output. */
export const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/**
 * One training step as the project's Trainer takes it (train mode, fresh noise and timesteps,
 * forward + backward + gradient clipping + AdamW, grads set to none), on random images: the cost
 * does not depend on the data.
 */
export function trainingStep(model: UNet2DModel, batch: number, gradClip: number): { step: () => void; dispose: () => void } {
  const c = model.config;
  model.train();
  const params = model.parameters();
  const optimizer = new AdamW(params, { lr: 1e-4 });
  const scheduler = new DDPMScheduler();
  const x0 = torch.keep(torch.tidy(() => torch.randn([batch, c.in_channels, c.sample_size, c.sample_size]).clamp(-1, 1)));
  const step = (): void =>
    torch.tidy(() => {
      const noise = torch.randnLike(x0);
      const t = torch.randint(0, scheduler.numTrainTimesteps, [batch]);
      denoisingLoss(model, scheduler, x0, noise, t).backward();
      torch.clipGradNorm(params, gradClip);
      optimizer.step();
      optimizer.zeroGrad();
    });
  const dispose = (): void => {
    x0.dispose();
    optimizer.dispose();
    scheduler.dispose();
  };
  return { step, dispose };
}

// Debian's python3-torch; `python3` on PATH may be another interpreter without torch.
export const PYTHON = "/usr/bin/python3";

export const hasPythonTorch = (): boolean => spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" }).status === 0;

/** A Python peer script in bench/ (compiled benchmarks run from dist/bench/; the scripts stay in bench/). */
export const peerScript = (name: string): string => fileURLToPath(new URL(`../../bench/${name}`, import.meta.url));

/**
 * A PyTorch peer (bench/engine_torch.py, bench/peer_unet.py) in --serve mode: it prints one info
 * JSON line, then answers each "NAME ITERS" line with [seconds, page faults] per call. Our repeats
 * and its repeats alternate, so drift on a noisy machine hits both alike.
 */
export class PeerProcess<Info> {
  private constructor(
    private readonly script: string,
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
  ) {}

  static async start<Info>(script: string, args: string[]): Promise<{ peer: PeerProcess<Info>; info: Info }> {
    const child = spawn(PYTHON, [script, ...args, "--serve"], { stdio: ["pipe", "pipe", "inherit"] });
    const peer = new PeerProcess<Info>(script, child, createInterface({ input: child.stdout })[Symbol.asyncIterator]());
    return { peer, info: JSON.parse(await peer.nextLine()) as Info };
  }

  private async nextLine(): Promise<string> {
    const r = await this.lines.next();
    if (r.done === true) throw new Error(`${this.script} exited early (status ${this.child.exitCode})`);
    return r.value;
  }

  async time(name: string, iters: number): Promise<Sample> {
    this.child.stdin.write(`${name} ${iters}\n`);
    const [seconds, faults] = JSON.parse(await this.nextLine()) as [number, number];
    return { seconds, faults };
  }

  close(): void {
    this.child.stdin.end();
  }
}
