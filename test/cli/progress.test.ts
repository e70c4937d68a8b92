// The progress line: no rate or ETA before time has passed (an update made at once used to print
// 1e9 it/s), then the rate and ETA of the work timed.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Progress } from "../../src/cli/progress.js";

function lines(fn: () => void): string[] {
  const out: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return out;
}

describe("Progress", () => {
  test("the first update, made at once, shows no rate and no ETA", () => {
    const [line] = lines(() => new Progress("work", 10).update(10));
    assert.match(line!, /work \[#+\] 10\/10 \? it\/s ETA \?/);
  });

  test("after time has passed: the rate of the work done, and the ETA of the rest", async () => {
    const p = new Progress("work", 4, 0, "img");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [line] = lines(() => p.update(4));
    const rate = Number(/ ([\d.]+) img\/s/.exec(line!)?.[1]);
    assert.ok(rate > 4 && rate < 25, line);
    assert.match(line!, /ETA 0m00s/);
  });
});
