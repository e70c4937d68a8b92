// Helpers of the distributed tests: free loopback ports, and processes run with a time limit.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../helpers/fixtures.js";

export const cliMain = join(repoRoot(), "dist", "src", "cli", "main.js");
export const workerScript = join(repoRoot(), "dist", "test", "distributed", "worker.js");

export { freePort } from "../../src/cli/launch.js";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Proc {
  child: ReturnType<typeof spawn>;
  done: Promise<Exit>;
  /** Resolves at the first stderr or stdout text matching `re`. */
  waitFor(re: RegExp): Promise<void>;
}

/** Starts `node args` with `env` added; SIGKILLed after `limitMs` (then `done` reports the signal). */
export function start(args: string[], env: Record<string, string>, limitMs = 120_000): Proc {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1", ...env } });
  let stdout = "";
  let stderr = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) if (w.re.test(stdout) || w.re.test(stderr)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout!.on("data", (d: Buffer) => ((stdout += d.toString()), check()));
  child.stderr!.on("data", (d: Buffer) => ((stderr += d.toString()), check()));
  const limit = setTimeout(() => child.kill("SIGKILL"), limitMs);
  const done = new Promise<Exit>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    }),
  );
  return {
    child,
    done,
    waitFor: (re) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ re, resolve });
        check();
        void done.then(() => reject(new Error(`exited before printing ${re}:\n${stderr}`)));
      }),
  };
}
