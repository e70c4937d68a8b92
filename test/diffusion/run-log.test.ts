// log.jsonl: a torn last line (a crash mid-append) is dropped with a note, any other bad line is
// an error naming the file and line, and trimming cuts the log back to a checkpoint's step.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readRunLog, RunLogError, trimRunLog } from "../../src/diffusion/run-log.js";
import { scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-runlog-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const entry = (step: number): string => JSON.stringify({ step, loss: 0.5, lr: 1e-4, grad_norm: 1, time: "2024-01-01T00:00:00.000Z" });
const lines = (...steps: number[]): string => steps.map((s) => entry(s) + "\n").join("");
let n = 0;
const logFile = (text: string): string => {
  const file = join(scratch, `log-${n++}.jsonl`);
  writeFileSync(file, text);
  return file;
};

describe("run log", () => {
  test("a missing log is empty, and trimming it creates nothing", () => {
    const file = join(scratch, "none.jsonl");
    assert.deepEqual(readRunLog(file).lines, []);
    assert.equal(trimRunLog(file, 5), null);
    assert.throws(() => readFileSync(file), /ENOENT/);
  });

  test("trimming keeps the entries up to the step and no later", () => {
    const file = logFile(lines(2, 4, 6, 8));
    assert.equal(trimRunLog(file, 5), null);
    assert.equal(readFileSync(file, "utf8"), lines(2, 4));
    assert.equal(trimRunLog(file, 0), null);
    assert.equal(readFileSync(file, "utf8"), "");
  });

  test("a log already at the step is left as it is", () => {
    const file = logFile(lines(2, 4));
    assert.equal(trimRunLog(file, 4), null);
    assert.equal(readFileSync(file, "utf8"), lines(2, 4));
  });

  for (const [what, tail] of [
    ["half an entry", entry(6).slice(0, 17)],
    ["NUL bytes", "\0\0\0\0\0\0"],
    ["an entry cut inside a string", '{"step":6,"loss":0.5,"time":"2024-01'],
  ] as const) {
    test(`a torn last line (${what}) is dropped with one note`, () => {
      const file = logFile(lines(2, 4) + tail);
      assert.equal(readRunLog(file).torn, tail);
      const note = trimRunLog(file, 10);
      assert.match(note ?? "", new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: dropped a torn last line \\(\\d+ bytes, left by an interrupted write\\)`));
      assert.equal(readFileSync(file, "utf8"), lines(2, 4));
      assert.equal(trimRunLog(file, 10), null, "said once: the second trim finds nothing torn");
    });
  }

  test("a complete last entry without its newline is kept, and the newline added", () => {
    const file = logFile(lines(2) + entry(4));
    assert.equal(trimRunLog(file, 10), null);
    assert.equal(readFileSync(file, "utf8"), lines(2, 4));
  });

  test("blank lines are skipped", () => {
    const file = logFile(lines(2) + "\n\n" + lines(4) + "\n");
    assert.deepEqual(
      readRunLog(file).lines.map((l) => l.step),
      [2, 4],
    );
  });

  for (const [what, bad, why] of [
    ["not JSON", '{"step":3,"lo', /line 2 is not a log entry: it is not JSON/],
    ["not an object", "[1,2]", /line 2 is not a log entry: it is not a JSON object/],
    ["no step", '{"loss":0.5}', /line 2 is not a log entry: its step is missing, not a positive integer/],
    ["a string step", '{"step":"3"}', /line 2 is not a log entry: its step is "3", not a positive integer/],
    ["a fractional step", '{"step":2.5}', /line 2 is not a log entry: its step is 2.5, not a positive integer/],
  ] as const) {
    test(`a bad line before the last (${what}) is an error naming the file and line`, () => {
      const file = logFile(lines(2) + bad + "\n" + lines(4));
      const before = readFileSync(file, "utf8");
      assert.throws(() => trimRunLog(file, 10), (err: Error) => {
        assert.ok(err instanceof RunLogError);
        assert.ok(err.message.startsWith(`${file} line 2 `), err.message);
        assert.match(err.message, why);
        assert.match(err.message, /fix or delete that line .* or train into a new folder$/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.equal(readFileSync(file, "utf8"), before, "the log is left as it was");
    });
  }
});
