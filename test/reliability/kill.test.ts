// kill -9 at seeded points, then the command again: finetune (resumed until done), prune --method
// taylor, sample and demo (continued) must end with the same bytes and numbers as a run that was
// never interrupted, and a killed prune or sample must leave its output folder absent or whole:
// never a partial set, never files of two runs. Kill points are seeded fractions of a command's
// work, timed from its first output (start-up before it varies most with the machine's load).
// DIFFPRUNE_KILL_SEED changes the draw (default 19).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { basename, dirname, join, relative } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { parse, saveFile } from "../../src/io/index.js";
import { fixture, repoRoot, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { mulberry32 } from "../helpers/random.js";

const SEED = Number(process.env.DIFFPRUNE_KILL_SEED ?? 19);
const scratch = scratchDir("diffprune-kill-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1", DIFFPRUNE_CACHE: join(scratch, "cache") };

// ---- inputs: the tiny model with a 20-step schedule, eight 16x16 images, a calibration batch ----

const model = join(scratch, "unet-tiny");
cpSync(fixture("unet-tiny"), model, { recursive: true });
const schedulerFile = join(model, "scheduler_config.json");
writeFileSync(schedulerFile, JSON.stringify({ ...JSON.parse(readFileSync(schedulerFile, "utf8")), num_train_timesteps: 20 }, null, 2));

const images = tinyImageFolder(join(scratch, "images"));

const calibration = join(scratch, "calibration.safetensors");
torch.manualSeed(SEED);
torch.tidy(() => saveFile({ images: torch.rand([2, 1, 16, 16]).mul(2).sub(1), noise: torch.randn([2, 1, 16, 16]) }, calibration));

// ---- running and killing ----

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether our SIGKILL found it still running. */
  killed: boolean;
  ms: number;
  /** When its first output came (ms after the start), or its end when it printed nothing. */
  firstOutputMs: number;
  output: string;
}

/**
 * `diffprune args`; with `killMs`, SIGKILLed that long after its first output (start-up before it
 * varies with the machine's load, the work after it less) if still running. Every wait ends by `limitMs`.
 */
function run(args: string[], killMs?: number, limitMs = 240_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [main, ...args], { env });
    let output = "";
    let firstOutputMs: number | null = null;
    let killed = false;
    let killer: NodeJS.Timeout | undefined;
    const collect = (d: Buffer): void => {
      if (firstOutputMs === null) {
        firstOutputMs = performance.now() - start;
        if (killMs !== undefined)
          killer = setTimeout(() => {
            killed = child.exitCode === null && child.signalCode === null;
            child.kill("SIGKILL");
          }, killMs);
      }
      output += d.toString();
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    let timedOut = false;
    const limit = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, limitMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      clearTimeout(limit);
      const ms = performance.now() - start;
      if (timedOut) return reject(new Error(`diffprune ${args.join(" ")} ran past ${limitMs} ms (a hang?)\n${output}`));
      resolve({ code, signal, killed: killed && signal === "SIGKILL", ms, firstOutputMs: firstOutputMs ?? ms, output });
    });
  });
}

/** A finished run must have exited 0. */
function assertDone(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}\n${r.output}`);
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.output}`);
}

/**
 * Where to kill: `n` seeded fractions of a command's work (the time from its first output to its
 * end; for a resumed run, of what is left of it), one in each of n slices, in a seeded order.
 * The slices narrow towards the end (square roots of equal ones), where the outputs are written.
 */
function killPoints(n: number, salt: number): number[] {
  const rand = mulberry32(SEED * 1000 + salt);
  const points = Array.from({ length: n }, (_, i) => Math.sqrt((i + rand()) / n));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [points[i], points[j]] = [points[j]!, points[i]!];
  }
  return points;
}

/** The work of a command, in ms after its first output: the shortest seen in complete runs (a loaded machine only slows some). */
class WorkTime {
  ms = Infinity;
  see(r: Run): void {
    if (r.code === 0) this.ms = Math.min(this.ms, r.ms - r.firstOutputMs);
  }
  at(point: number): number {
    return Math.round(point * this.ms);
  }
}

/**
 * Runs `args` to be killed at `point` of `work`. A run that ends first (the machine got faster)
 * is tried again, up to twice, from `fresh()` (which puts its output back as it was) with the
 * updated estimate; one that never is killed is returned as it ended.
 */
async function killAt(args: string[], point: number, work: WorkTime, fresh?: () => void): Promise<Run & { atMs: number }> {
  for (let attempt = 0; ; attempt++) {
    const atMs = work.at(point);
    const r = await run(args, atMs);
    work.see(r);
    if (r.killed || !fresh || attempt === 2) return { ...r, atMs };
    fresh();
  }
}

/** Where a killed run had got to: its last line of output. */
const lastLine = (r: Run): string =>
  r.output.split(/[\r\n]/).map((l) => l.trim()).filter(Boolean).pop()?.slice(0, 70) ?? "(no output yet)";

// ---- folders as their files ----

/** A folder's files (relative path -> sha256 of the bytes `normalize` makes of them), or null when it is not there. */
function filesOf(dir: string, normalize: (name: string, bytes: Buffer) => Buffer = (_, b) => b): Map<string, string> | null {
  if (!existsSync(dir)) return null;
  const files = new Map<string, string>();
  const walk = (p: string): void => {
    if (statSync(p).isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name));
    else files.set(relative(dir, p), createHash("sha256").update(normalize(relative(dir, p), readFileSync(p))).digest("hex"));
  };
  walk(dir);
  return files;
}

const sameFiles = (a: Map<string, string>, b: Map<string, string>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** "absent", the name of the known state the folder is whole, or what it holds of each ("a mix (...)"). */
function stateOf(dir: string, known: Record<string, Map<string, string>>, normalize?: (name: string, bytes: Buffer) => Buffer): string {
  const files = filesOf(dir, normalize);
  if (files === null) return "absent";
  for (const [name, state] of Object.entries(known)) if (sameFiles(files, state)) return name;
  const names = new Set([...files.keys(), ...Object.values(known).flatMap((s) => [...s.keys()])]);
  const parts = [...names].sort().map((f) => {
    const h = files.get(f);
    const from = Object.entries(known).filter(([, s]) => h !== undefined && s.get(f) === h).map(([n]) => n);
    return `${f}: ${h === undefined ? "missing" : from.length > 0 ? from.join("/") : "other bytes"}`;
  });
  return `a mix (${parts.join("; ")})`;
}

/** What an atomic writer names its temp file or folder beside `name`: `.<name>.<pid>.<hex>.tmp`. */
const isTemp = (name: string): boolean => /^\..+\.tmp$/.test(name);

/** Temp files or folders of `path`'s writer, beside it. */
const tempsBeside = (path: string): string[] => readdirSync(dirname(path)).filter((n) => isTemp(n) && n.startsWith(`.${basename(path)}.`));

/** Temp files or folders anywhere under `dir`. */
function tempsUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (p: string): void => {
    for (const name of readdirSync(p)) {
      const q = join(p, name);
      if (isTemp(name)) found.push(relative(dir, q));
      else if (statSync(q).isDirectory()) walk(q);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

// ---- the scenarios ----

interface Reference {
  work: WorkTime;
  files: Map<string, string>;
}

/**
 * Kills `command` into a fresh `out-<i>` under `name` (prepared by `before`) at seeded points; after
 * each kill the folder must be absent or one of `known` (or the uninterrupted run's files) whole,
 * and a rerun must give the uninterrupted run's files with no temp files left beside them.
 */
async function killAndRerun(o: {
  t: { diagnostic: (s: string) => void };
  name: string;
  salt: number;
  command: (out: string) => string[];
  reference: Reference;
  before?: (out: string) => void;
  known?: Record<string, Map<string, string>>;
  normalize?: (name: string, bytes: Buffer) => Buffer;
  check?: (dir: string) => void;
}): Promise<void> {
  const states = { ...o.known, new: o.reference.files };
  const landed: string[] = [];
  mkdirSync(join(scratch, o.name), { recursive: true });
  for (const [i, point] of killPoints(3, o.salt).entries()) {
    const out = join(scratch, o.name, `out-${i}`);
    const fresh = (): void => {
      rmSync(out, { recursive: true, force: true });
      o.before?.(out);
    };
    fresh();
    const r = await killAt(o.command(out), point * 0.95, o.reference.work, fresh);
    const state = stateOf(out, states, o.normalize);
    const where = r.killed ? `${r.atMs} ms after its first output, at "${lastLine(r)}"` : `${r.atMs} ms (it ended first)`;
    landed.push(`${where}: ${state}`);
    assert.ok(state === "absent" || state in states, `after a kill ${where}, ${out} is ${state}`);
    if (state !== "absent") o.check?.(out);
    const rerun = await run(o.command(out));
    assertDone(rerun, `the rerun after a kill ${where}`);
    o.reference.work.see(rerun);
    assert.equal(stateOf(out, { new: o.reference.files }, o.normalize), "new", `the rerun after a kill ${where} did not give the uninterrupted run's files`);
    assert.deepEqual(tempsBeside(out), [], `temp files beside ${out} after the rerun`);
  }
  o.t.diagnostic(`kills: ${landed.join(" | ")}`);
  assert.ok(landed.some((l) => !l.includes("ended first")), "no kill landed before its run ended");
}

describe("kill -9, then again", { concurrency: false }, () => {
  test("finetune, killed at seeded points and resumed with --resume until done: the same model bytes and log as one run", { timeout: 600_000 }, async (t) => {
    const STEPS = 10;
    const finetune = (out: string, ...more: string[]) => ["finetune", "--model", model, "--data", `folder:${images}`, "--batch-size", "2", "--steps", String(STEPS), "--checkpoint-every", "1", "--out", out, ...more];
    const whole = join(scratch, "finetune-whole");
    const reference = await run(finetune(whole));
    assertDone(reference, "the uninterrupted run");
    const work = new WorkTime();
    work.see(reference);

    const out = join(scratch, "finetune-killed");
    const landed: string[] = [];
    let done = false;
    let checkpointed = 0; // a resumed run does the steps after it
    for (const [i, point] of killPoints(5, 1).entries()) {
      const fresh = i === 0 ? () => rmSync(out, { recursive: true, force: true }) : undefined;
      const r = await killAt(finetune(out, ...(i > 0 ? ["--resume"] : [])), (point * 0.95 * (STEPS - checkpointed)) / STEPS, work, fresh);
      if (!r.killed) {
        assertDone(r, `run ${i + 1} (not killed: it ended within ${r.atMs} ms of its first output)`);
        done = true;
        break;
      }
      landed.push(`${r.atMs} ms: "${lastLine(r)}"`);
      for (const m of r.output.matchAll(/checkpoint at step (\d+)/g)) checkpointed = Math.max(checkpointed, Number(m[1]));
    }
    if (!done) assertDone(await run(finetune(out, "--resume")), "the last --resume");
    t.diagnostic(`kills after the first output (${landed.length}): ${landed.join(" | ")}`);
    assert.ok(landed.length > 0, "no kill landed before the run ended");

    assert.equal(stateOf(join(out, "model"), { whole: filesOf(join(whole, "model"))! }), "whole", "the resumed run's model differs from the uninterrupted run's");
    const log = (dir: string) => readFileSync(join(dir, "log.jsonl"), "utf8").replace(/"time":"[^"]*"/g, '"time":""');
    assert.equal(log(out), log(whole), "log.jsonl differs (times aside)");
    assert.deepEqual(tempsUnder(out), [], "temp files left in the run folder");
  });

  describe("prune --method taylor", { concurrency: false }, () => {
    const prune = (out: string) => ["prune", "--model", model, "--method", "taylor", "--ratio", "0.3", "--calibration", calibration, "--out", out];
    /** pruning.json without its timing. */
    const normalize = (name: string, bytes: Buffer): Buffer => {
      if (name !== "pruning.json") return bytes;
      try {
        const record = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
        delete record.seconds;
        return Buffer.from(JSON.stringify(record));
      } catch {
        return bytes; // torn: matches nothing
      }
    };
    /** pruning.json describes these weights: the parameter count and every layer's width. */
    const check = (dir: string): void => {
      const record = JSON.parse(readFileSync(join(dir, "pruning.json"), "utf8")) as { params: { after: number }; layers: { name: string; out: [number, number] }[] };
      const { tensors } = parse(readFileSync(join(dir, "diffusion_pytorch_model.safetensors")), dir);
      const count = [...tensors.values()].reduce((n, info) => n + info.shape.reduce((a, b) => a * b, 1), 0);
      assert.equal(count, record.params.after, `${dir}: pruning.json's parameter count is not the weights'`);
      for (const layer of record.layers) assert.equal(tensors.get(`${layer.name}.weight`)?.shape[0], layer.out[1], `${dir}: ${layer.name}'s width`);
    };

    let reference: Promise<Reference> | undefined;
    const uninterrupted = () =>
      (reference ??= (async () => {
        const dir = join(scratch, "prune-whole");
        const r = await run(prune(dir));
        assertDone(r, "the uninterrupted prune");
        check(dir);
        const work = new WorkTime();
        work.see(r);
        return { work, files: filesOf(dir, normalize)! };
      })());

    test("into a new folder: after each kill it is absent or whole; a rerun gives the uninterrupted run's bytes", { timeout: 600_000 }, async (t) => {
      await killAndRerun({ t, name: "prune-new", salt: 2, command: prune, reference: await uninterrupted(), normalize, check });
    });

    test("over an earlier prune (magnitude, ratio 0.5): after each kill the folder is the old run or the new one whole, or absent; a rerun gives the new bytes", { timeout: 600_000 }, async (t) => {
      const earlier = join(scratch, "prune-earlier");
      assertDone(await run(["prune", "--model", model, "--method", "magnitude", "--ratio", "0.5", "--out", earlier]), "the earlier prune");
      check(earlier);
      const before = (out: string) => cpSync(earlier, out, { recursive: true });
      await killAndRerun({ t, name: "prune-over", salt: 3, command: prune, reference: await uninterrupted(), before, known: { old: filesOf(earlier, normalize)! }, normalize, check });
    });
  });

  describe("sample", { concurrency: false }, () => {
    const sample = (out: string, seed = 0) => ["sample", "--model", model, "--num", "4", "--steps", "4", "--batch-size", "1", "--seed", String(seed), "--out", out];
    let reference: Promise<Reference> | undefined;
    const uninterrupted = () =>
      (reference ??= (async () => {
        const dir = join(scratch, "sample-whole");
        const r = await run(sample(dir));
        assertDone(r, "the uninterrupted sample");
        const work = new WorkTime();
        work.see(r);
        return { work, files: filesOf(dir)! };
      })());

    test("into a new folder: after each kill it is absent or the whole set; a rerun gives the same images", { timeout: 600_000 }, async (t) => {
      await killAndRerun({ t, name: "sample-new", salt: 4, command: sample, reference: await uninterrupted() });
    });

    test("over an earlier set (--seed 1): after each kill the folder is the old set or the new one whole, or absent", { timeout: 600_000 }, async (t) => {
      const earlier = join(scratch, "sample-earlier");
      assertDone(await run(sample(earlier, 1)), "the earlier sample");
      const before = (out: string) => cpSync(earlier, out, { recursive: true });
      await killAndRerun({ t, name: "sample-over", salt: 5, command: sample, reference: await uninterrupted(), before, known: { old: filesOf(earlier)! } });
    });
  });

  test("demo, killed twice at seeded points and continued: the same metrics (timings aside), samples and models as one run", { timeout: 900_000 }, async (t) => {
    const demo = (out: string) => [
      "demo", "--model", model, "--data", `folder:${images}`, "--out", out, "--methods", "diff-pruning",
      "--finetune-steps", "2", "--batch-size", "2", "--num-samples", "2", "--sampling-steps", "2", "--calib-batch", "2",
    ];
    const whole = join(scratch, "demo-whole");
    const reference = await run(demo(whole));
    assertDone(reference, "the uninterrupted demo");
    const work = new WorkTime();
    work.see(reference);

    const out = join(scratch, "demo-killed");
    const landed: string[] = [];
    let done = false;
    let left = 1; // of the work: a continued run skips the stages that had finished
    for (const [i, point] of killPoints(2, 6).entries()) {
      const fresh = i === 0 ? () => rmSync(out, { recursive: true, force: true }) : undefined;
      const r = await killAt(demo(out), point * 0.95 * left, work, fresh);
      left *= 1 - point;
      if (!r.killed) {
        assertDone(r, `a run not killed (it ended within ${r.atMs} ms of its first output)`);
        done = true;
        break;
      }
      landed.push(`${r.atMs} ms: "${lastLine(r)}"`);
    }
    if (!done) assertDone(await run(demo(out)), "the continued run");
    t.diagnostic(`kills after the first output (${landed.length}): ${landed.join(" | ")}`);
    assert.ok(landed.length > 0, "no kill landed before the run ended");

    /** metrics.json without what timing and the run folder's name change. */
    const metrics = (dir: string): unknown => {
      const m = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as { options: Record<string, unknown>; rows: Record<string, unknown>[] };
      delete m.options.out;
      for (const row of m.rows) for (const key of Object.keys(row)) if (/^(latency|speedup)_/.test(key)) delete row[key];
      return m;
    };
    assert.deepEqual(metrics(out), metrics(whole), "metrics.json differs (timings aside)");
    for (const f of ["pretrained/samples.safetensors", "diff-pruning/samples.safetensors", "diff-pruning/finetune/model/diffusion_pytorch_model.safetensors", "diff-pruning/pruned/diffusion_pytorch_model.safetensors"])
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(whole, f))), `${f} differs`);
    assert.deepEqual(tempsUnder(out), [], "temp files left in the run folder");
  });
});
