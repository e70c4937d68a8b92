// Training: a tiny UNet lowers its loss, and a run killed after a checkpoint and resumed ends
// bit-identical to an uninterrupted one.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { learningRate } from "../../src/diffusion/index.js";
import { timeless, trainer, zip } from "./train-helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "diffprune-train-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("Trainer", () => {
  test("a tiny UNet's loss falls over a few hundred steps", () => {
    const t = trainer(join(scratch, "falls"), { steps: 300, checkpointEvery: 1000, logEvery: 50 });
    const losses: number[] = [];
    t.run({ onStep: (info) => losses.push(info.loss) });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const head = mean(losses.slice(0, 20));
    const tail = mean(losses.slice(-50));
    assert.ok(tail < 0.6 * head, `loss ${head.toFixed(3)} -> ${tail.toFixed(3)}`);
    const log = readFileSync(join(scratch, "falls", "log.jsonl"), "utf8").trim().split("\n");
    assert.equal(log.length, 6);
    assert.ok(existsSync(join(scratch, "falls", "checkpoint.safetensors")), "a checkpoint at the last step");
    t.model.dispose();
    t.dispose();
  });

  test("resuming after a kill reproduces the uninterrupted run exactly", () => {
    const options = { steps: 24, checkpointEvery: 10, logEvery: 2, sampleEvery: 12 };
    const whole = trainer(join(scratch, "whole"), options);
    whole.run();

    const dir = join(scratch, "resumed");
    const a = trainer(dir, options);
    a.options.steps = 10;
    a.run(); // to the checkpoint at step 10
    for (let i = 0; i < 3; i++) a.trainStep(); // then work that the kill loses
    a.model.dispose();
    a.dispose();
    const b = trainer(dir, options);
    b.loadCheckpoint();
    assert.equal(b.step, 10);
    b.run();

    for (const [[name, p], [, q]] of zip(whole.model.namedParameters(), b.model.namedParameters()))
      assert.ok(torch.equal(p, q), `parameter ${name} differs after resuming`);
    whole.ema!.shadow.forEach((s, i) => assert.ok(torch.equal(s, b.ema!.shadow[i]!), `EMA ${i} differs`));
    assert.equal(timeless(readFileSync(join(dir, "log.jsonl"), "utf8")), timeless(readFileSync(join(scratch, "whole", "log.jsonl"), "utf8")));
    assert.ok(existsSync(join(dir, "samples", "step-0000024.png")));
  });

  test("training steps, checkpoints and sample grids leave no tensors behind", () => {
    const t = trainer(join(scratch, "leaks"), { steps: 6, checkpointEvery: 3, sampleEvery: 3 });
    t.trainStep();
    const before = torch.memory();
    t.run();
    assert.deepEqual(torch.memory(), before);
  });

  test("a checkpoint from other settings is refused", () => {
    const dir = join(scratch, "settings");
    const a = trainer(dir, { steps: 2, checkpointEvery: 2 });
    a.run();
    const b = trainer(dir, { steps: 4, lr: 1e-3 });
    assert.throws(() => b.loadCheckpoint(), /written with other settings \(lr: 0.002\); resume with the same settings/);
  });

  test("learning rate: linear warm-up, then constant or cosine to zero", () => {
    const o = { lr: 1, warmupSteps: 4, steps: 14 };
    assert.deepEqual([0, 1, 3].map((s) => learningRate({ ...o, lrSchedule: "constant" }, s)), [0.25, 0.5, 1]);
    assert.equal(learningRate({ ...o, lrSchedule: "constant" }, 10), 1);
    assert.equal(learningRate({ ...o, lrSchedule: "cosine" }, 4), 1);
    assert.ok(Math.abs(learningRate({ ...o, lrSchedule: "cosine" }, 9) - 0.5) < 1e-12);
    assert.ok(learningRate({ ...o, lrSchedule: "cosine" }, 14) < 1e-12);
  });
});
