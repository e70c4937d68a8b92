// Resuming: a torn log tail is dropped, a damaged log or trainer_state is refused naming the file
// and what is wrong, checkpoints come on a clock as well as every N steps, and a run restarted
// from its checkpoint (or from step 0, when none was written) logs no step twice and ends
// bit-identical to an uninterrupted run.
import assert from "node:assert/strict";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { load, parse, saveFile } from "../../src/io/index.js";
import { CheckpointError, checkpointState, TrainingDivergedError } from "../../src/diffusion/train.js";
import { RunLogError } from "../../src/diffusion/run-log.js";
import { scratchDir } from "../helpers/fixtures.js";
import { close, timeless, trainer, zip } from "./train-helpers.js";
import type { Trainer } from "../../src/diffusion/index.js";

const scratch = scratchDir("diffprune-resume-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const readLog = (dir: string): string => readFileSync(join(dir, "log.jsonl"), "utf8");
const loggedSteps = (dir: string): number[] =>
  readLog(dir)
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { step: number }).step);

/** Asserts two trainers hold the same weights and EMA, bit for bit. */
function assertSameWeights(a: Trainer, b: Trainer): void {
  for (const [[name, p], [, q]] of zip(a.model.namedParameters(), b.model.namedParameters())) assert.ok(torch.equal(p, q), `parameter ${name} differs`);
  a.ema!.shadow.forEach((s, i) => assert.ok(torch.equal(s, b.ema!.shadow[i]!), `EMA ${i} differs`));
}

/** A run killed by an exception from its onStep hook at `killAt` (after that step, before its log entry). */
function runUntilKilled(t: Trainer, killAt: number, onStep: () => void = () => {}): void {
  assert.throws(
    () =>
      t.run({
        onStep: (info) => {
          onStep();
          if (info.step === killAt) throw new Error("killed");
        },
      }),
    /killed/,
  );
}

/** A fake clock that the returned `tick` moves on by `ms`. */
function fakeClock(t: Trainer): (ms: number) => void {
  let now = 0;
  t.clock = () => now;
  return (ms) => void (now += ms);
}

/** A run folder holding a checkpoint at step 2 and a log with entries for steps 1 and 2. */
function runFolder(name: string): string {
  const dir = join(scratch, name);
  const t = trainer(dir, { steps: 2, checkpointEvery: 2, logEvery: 1 });
  t.run();
  close(t);
  return dir;
}

describe("resuming a run", () => {
  test("a time-based checkpoint comes once checkpointSeconds have passed, besides every checkpointEvery steps", () => {
    const t = trainer(join(scratch, "clock"), { steps: 12, checkpointEvery: 10, checkpointSeconds: 120, logEvery: 4 });
    const tick = fakeClock(t);
    const saved: number[] = [];
    t.run({ onStep: () => tick(50_000), onEvent: (m) => void (/^checkpoint at step (\d+)$/.test(m) && saved.push(Number(m.split(" ").at(-1)))) });
    assert.deepEqual(saved, [3, 6, 9, 10, 12]);
    close(t);
  });

  test("by default a checkpoint comes every 120 s of training even when --checkpoint-every is far off", () => {
    const t = trainer(join(scratch, "default-clock"), { steps: 4, logEvery: 4 });
    assert.equal(t.options.checkpointSeconds, 120);
    assert.equal(t.options.checkpointEvery, 500);
    const tick = fakeClock(t);
    const saved: string[] = [];
    t.run({ onStep: () => tick(61_000), onEvent: (m) => saved.push(m) });
    assert.deepEqual(saved, ["checkpoint at step 2", "checkpoint at step 4"]);
    close(t);
  });

  test("checkpointSeconds 0 turns the clock off", () => {
    const t = trainer(join(scratch, "no-clock"), { steps: 3, checkpointEvery: 100, checkpointSeconds: 0 });
    const tick = fakeClock(t);
    const saved: string[] = [];
    t.run({ onStep: () => tick(1e9), onEvent: (m) => saved.push(m) });
    assert.deepEqual(saved, ["checkpoint at step 3"]);
    close(t);
  });

  test("killed after a time-based checkpoint between log entries, a resumed run is bit-identical and logs each step once", () => {
    const options = { steps: 12, checkpointEvery: 100, checkpointSeconds: 120, logEvery: 4 };
    const whole = trainer(join(scratch, "t-whole"), options);
    whole.run();

    const dir = join(scratch, "t-resumed");
    const a = trainer(dir, options);
    const tick = fakeClock(a);
    runUntilKilled(a, 9, () => tick(50_000)); // checkpoints at 3 and 6; log entries at 4 and 8
    close(a);
    assert.deepEqual(loggedSteps(dir), [4, 8]);
    assert.equal(checkpointState(readFileSync(join(dir, "checkpoint.safetensors")), "ckpt").step, 6);
    assert.equal(checkpointState(readFileSync(join(dir, "checkpoint.safetensors")), "ckpt").loss_window.length, 2, "the losses of steps 5 and 6");

    const b = trainer(dir, options);
    b.loadCheckpoint();
    assert.equal(b.step, 6);
    b.run();
    assertSameWeights(whole, b);
    assert.equal(timeless(readLog(dir)), timeless(readLog(join(scratch, "t-whole"))), "the same entries, each once, with the same mean losses");
    close(whole);
    close(b);
  });

  test("killed before any checkpoint, a restarted run starts the log again instead of appending a second copy", () => {
    const options = { steps: 8, checkpointEvery: 100, checkpointSeconds: 0, logEvery: 2 };
    const whole = trainer(join(scratch, "z-whole"), options);
    whole.run();

    const dir = join(scratch, "z-restarted");
    const a = trainer(dir, options);
    runUntilKilled(a, 7);
    close(a);
    assert.deepEqual(loggedSteps(dir), [2, 4, 6]);
    assert.ok(!existsSync(join(dir, "checkpoint.safetensors")));

    const b = trainer(dir, options); // --resume with no checkpoint: from step 0
    b.run();
    assert.deepEqual(loggedSteps(dir), [2, 4, 6, 8]);
    assert.equal(timeless(readLog(dir)), timeless(readLog(join(scratch, "z-whole"))));
    assertSameWeights(whole, b);
    close(whole);
    close(b);
  });

  test("half the steps, stopped, then the other half: the same weights as all the steps in one go", () => {
    const options = { steps: 16, checkpointEvery: 8, logEvery: 4, sampleEvery: 8 };
    const whole = trainer(join(scratch, "h-whole"), options);
    whole.run();
    const dir = join(scratch, "h-halves");
    const a = trainer(dir, { ...options, steps: 8 });
    a.run();
    close(a);
    const b = trainer(dir, options);
    b.loadCheckpoint();
    assert.equal(b.step, 8);
    b.run();
    assertSameWeights(whole, b);
    assert.equal(timeless(readLog(dir)), timeless(readLog(join(scratch, "h-whole"))));
    close(whole);
    close(b);
  });

  test("a torn last log line is dropped once, with a note, and the run goes on", () => {
    const dir = runFolder("torn");
    appendFileSync(join(dir, "log.jsonl"), '{"step":3,"loss":0.4');
    const t = trainer(dir, { steps: 3, checkpointEvery: 2, logEvery: 1 });
    t.loadCheckpoint();
    const notes: string[] = [];
    t.run({ onEvent: (m) => notes.push(m) });
    assert.equal(notes.filter((m) => /dropped a torn last line/.test(m)).length, 1);
    assert.ok(notes[0]!.startsWith(join(dir, "log.jsonl")), notes[0]);
    assert.deepEqual(loggedSteps(dir), [1, 2, 3]);
    close(t);
  });

  test("a bad line inside the log is refused when the checkpoint is loaded, naming the file and line", () => {
    const dir = runFolder("bad-line");
    const log = join(dir, "log.jsonl");
    writeFileSync(log, readLog(dir).replace(/^.*\n/, "oops\n"));
    const t = trainer(dir, { steps: 3, checkpointEvery: 2, logEvery: 1 });
    assert.throws(() => t.loadCheckpoint(), (err: Error) => err instanceof RunLogError && err.message.startsWith(`${log} line 1 is not a log entry`));
    assert.equal(t.step, 0, "nothing restored");
    close(t);
  });

  test("a log past the checkpoint's step is cut back to it", () => {
    const dir = runFolder("past");
    appendFileSync(join(dir, "log.jsonl"), readLog(dir).replace(/"step":1,/, '"step":3,').replace(/"step":2,/, '"step":4,'));
    const t = trainer(dir, { steps: 2, checkpointEvery: 2, logEvery: 1 });
    t.loadCheckpoint();
    t.run();
    assert.deepEqual(loggedSteps(dir), [1, 2]);
    close(t);
  });
});

describe("a damaged checkpoint is refused, naming the file and what is wrong", () => {
  const base = runFolder("state-base");
  const original = JSON.parse(parse(readFileSync(join(base, "checkpoint.safetensors")), "ckpt").metadata.trainer_state!) as Record<string, unknown>;
  const options = original.options as Record<string, unknown>;

  /** A copy of the run folder whose checkpoint has this trainer_state (none when undefined). */
  function withState(name: string, state: string | undefined): string {
    const dir = join(scratch, `state-${name}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(base, "log.jsonl"), join(dir, "log.jsonl"));
    const tensors = load(readFileSync(join(base, "checkpoint.safetensors")), "ckpt");
    saveFile(tensors, join(dir, "checkpoint.safetensors"), state === undefined ? {} : { trainer_state: state });
    torch.dispose([...tensors.values()]);
    return dir;
  }

  const cases: [string, string | undefined, RegExp][] = [
    ["no trainer_state", undefined, /is not a diffprune training checkpoint \(no trainer_state\): train into a new folder$/],
    ["trainer_state null", "null", /: trainer_state is null, not an object; the checkpoint is damaged: delete it to restart this run from step 0, or train into a new folder$/],
    ["trainer_state not JSON", '{"step":', /: trainer_state is not JSON \(/],
    ["trainer_state a list", "[1,2]", /: trainer_state is \[1,2\], not an object/],
    ["no step", JSON.stringify({ ...original, step: undefined }), /: trainer_state step is missing, not a count of steps/],
    ["step null", JSON.stringify({ ...original, step: null }), /: trainer_state step is null, not a count of steps/],
    ["step a string", JSON.stringify({ ...original, step: "2" }), /: trainer_state step is "2", not a count of steps/],
    ["step negative", JSON.stringify({ ...original, step: -1 }), /: trainer_state step is -1, not a count of steps/],
    ["ema_step fractional", JSON.stringify({ ...original, ema_step: 1.5 }), /: trainer_state ema_step is 1.5, not a count of steps/],
    ["options null", JSON.stringify({ ...original, options: null }), /: trainer_state options is null, not an object/],
    ["options.lr a string", JSON.stringify({ ...original, options: { ...options, lr: "abc" } }), /: trainer_state options.lr is "abc", not a number/],
    ["options.seed missing", JSON.stringify({ ...original, options: { ...options, seed: undefined } }), /: trainer_state options.seed is missing, not a number/],
    ["options.adamBetas short", JSON.stringify({ ...original, options: { ...options, adamBetas: [0.9] } }), /: trainer_state options.adamBetas is \[0.9\], not 2 numbers/],
    ["options.ema a number", JSON.stringify({ ...original, options: { ...options, ema: 1 } }), /: trainer_state options.ema is 1, not a boolean/],
    ["loss_window of strings", JSON.stringify({ ...original, loss_window: ["x"] }), /: trainer_state loss_window is \["x"\], not a list of losses/],
  ];
  for (const [name, state, message] of cases) {
    test(name, () => {
      const dir = withState(name.replace(/\W+/g, "-"), state);
      const file = join(dir, "checkpoint.safetensors");
      const before = readFileSync(file);
      const t = trainer(dir, { steps: 3, checkpointEvery: 2, logEvery: 1 });
      assert.throws(
        () => t.loadCheckpoint(),
        (err: Error) => err instanceof CheckpointError && err.message.startsWith(file) && message.test(err.message) && !err.message.includes("\n"),
      );
      assert.equal(t.step, 0);
      assert.deepEqual(readFileSync(file), before, "the checkpoint is left as it was");
      close(t);
    });
  }

  test("a checkpoint from before loss_window and checkpointSeconds still resumes", () => {
    const { loss_window: _, ...older } = original;
    const { checkpointSeconds: __, ...olderOptions } = options;
    const dir = withState("older", JSON.stringify({ ...older, options: olderOptions }));
    const t = trainer(dir, { steps: 3, checkpointEvery: 2, logEvery: 1 });
    t.loadCheckpoint();
    assert.equal(t.step, 2);
    close(t);
  });

  test("a checkpoint holding NaN is refused: it came from a run that diverged", () => {
    const dir = withState("nan", JSON.stringify(original));
    const file = join(dir, "checkpoint.safetensors");
    const tensors = load(readFileSync(file), "ckpt");
    const key = [...tensors.keys()].find((k) => k.startsWith("ema."))!;
    torch.noGrad(() => tensors.get(key)!.fill_(NaN));
    saveFile(tensors, file, { trainer_state: JSON.stringify(original) });
    torch.dispose([...tensors.values()]);
    const t = trainer(dir, { steps: 3, checkpointEvery: 2, logEvery: 1 });
    assert.throws(() => t.loadCheckpoint(), (err: Error) => err instanceof CheckpointError && err.message.includes(`holds non-finite weights (${key})`));
    close(t);
  });

  test("the divergence error and the checkpoint error are Errors with their own names", () => {
    assert.equal(new TrainingDivergedError(() => "x", 3).name, "TrainingDivergedError");
    assert.equal(new CheckpointError("x").name, "CheckpointError");
  });
});
