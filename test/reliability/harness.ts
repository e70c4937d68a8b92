// The reliability suite's harness: a table of bad inputs, each run as a real `diffprune` process.
// Every case must exit non-zero (or 0 with a warning, when the case says so) with one line on
// stderr that says what was wrong, leave no output behind and change no input file.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/fixtures.js";

const main = join(repoRoot(), "dist", "src", "cli", "main.js");

export interface BadInput {
  /** What the case is, as the test's name. */
  name: string;
  /** `diffprune` arguments; a function runs when the case runs (to build its files first). */
  args: string[] | (() => string[]);
  /** What the one-line message must say. */
  message: RegExp;
  /** Paths that must not exist afterwards (the outputs the command was asked for). */
  noOutput?: string[] | (() => string[]);
  /** Files or folders whose content must be unchanged (the inputs). */
  unchanged?: string[] | (() => string[]);
  /** A warning with exit 0 instead of an error (an explicit opt-in case). */
  warning?: boolean;
  timeoutMs?: number;
}

/** A digest of a file, or of every file under a folder (names and contents). */
export function digest(path: string): string {
  const h = createHash("sha256");
  const walk = (p: string): void => {
    if (!existsSync(p)) return void h.update(`missing:${p}`);
    if (statSync(p).isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name));
    else h.update(p).update(readFileSync(p));
  };
  walk(path);
  return h.digest("hex");
}

export function runCli(args: string[], timeoutMs = 120_000) {
  return spawnSync(process.execPath, [main, ...args], { encoding: "utf8", timeout: timeoutMs, env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });
}

/** Progress bars (src/cli/progress.ts) and tty redraws are not messages; every other line is. */
const PROGRESS_LINE = /\[[#-]+\] \d+\/\d+ /;
export const messageLines = (stderr: string): string[] =>
  stderr.split("\n").filter((l) => l.trim() !== "" && !/^\s*\[|\r/.test(l) && !/^setup:/.test(l) && !PROGRESS_LINE.test(l));

/** Temp files or folders an atomic writer left beside `path` (`.<name>.<pid>.<hex>.tmp`). */
export function tempsBeside(path: string): string[] {
  const dir = dirname(path);
  if (!existsSync(dir)) return [];
  const prefix = `.${basename(path)}.`;
  return readdirSync(dir).filter((n) => n.startsWith(prefix) && n.endsWith(".tmp"));
}

const resolve = <T>(x: T | (() => T) | undefined, fallback: T): T => (x === undefined ? fallback : typeof x === "function" ? (x as () => T)() : x);

/** Registers one test per case. */
export function badInputs(cases: BadInput[]): void {
  for (const c of cases) {
    test(c.name, () => {
      const args = resolve(c.args, []);
      const unchanged = resolve(c.unchanged, []);
      const before = unchanged.map(digest);
      const r = runCli(args, c.timeoutMs);
      assert.equal(r.signal, null, `killed by ${r.signal} (a hang or a crash)`);
      const lines = messageLines(r.stderr);
      if (c.warning) {
        assert.equal(r.status, 0, r.stderr);
        assert.ok(lines.some((l) => c.message.test(l)), `a warning matching ${c.message}, got:\n${r.stderr}`);
      } else {
        assert.notEqual(r.status, 0, `exit 0 for a bad input; stdout: ${r.stdout}`);
        assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
        assert.match(lines[0]!, c.message);
        assert.doesNotMatch(r.stderr, /\n\s+at |node:internal|Error: .*\n.*\n/, "no stack trace");
        for (const p of resolve(c.noOutput, [])) {
          assert.ok(!existsSync(p), `${p} was left behind`);
          assert.deepEqual(tempsBeside(p), [], `temp files of ${p} were left behind`);
        }
      }
      unchanged.forEach((p, i) => assert.equal(digest(p), before[i], `${p} was changed`));
    });
  }
}
