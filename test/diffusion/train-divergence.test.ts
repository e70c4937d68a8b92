// A run that diverges (the loss, the gradient or the weights stop being finite) stops at that
// step with a message naming it and suggesting a lower lr, keeps the last good checkpoint, and
// never saves non-finite weights.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { load } from "../../src/io/index.js";
import { checkpointState, TrainingDivergedError } from "../../src/diffusion/train.js";
import { scratchDir } from "../helpers/fixtures.js";
import { close, trainer } from "./train-helpers.js";
import type { Trainer } from "../../src/diffusion/index.js";

const scratch = scratchDir("diffprune-diverge-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The run's error, asserted to be a divergence at `step`. */
function divergesAt(t: Trainer, step: number, onStep: (step: number) => void = () => {}): TrainingDivergedError {
  let caught: unknown;
  try {
    t.run({ onStep: (info) => onStep(info.step) });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TrainingDivergedError, `a TrainingDivergedError, got ${String(caught)}`);
  assert.equal(caught.step, step);
  assert.ok(caught.message.startsWith(`training diverged at step ${step}: `), caught.message);
  assert.match(caught.message, /train again with a lower lr \([^)]+ here\)$/);
  assert.doesNotMatch(caught.message, /\n/);
  return caught;
}

/** Every tensor of the checkpoint is finite, and it is the one of `step`. */
function assertGoodCheckpoint(dir: string, step: number): void {
  const bytes = readFileSync(join(dir, "checkpoint.safetensors"));
  assert.equal(checkpointState(bytes, "ckpt").step, step);
  const tensors = load(bytes, "ckpt");
  for (const [name, t] of tensors) assert.ok(torch.tidy(() => t.isfinite().logicalNot().sum().item()) === 0, `${name} holds non-finite values`);
  torch.dispose([...tensors.values()]);
}

const nanFirstParameter = (t: Trainer): void => torch.noGrad(() => void t.model.parameters()[0]!.fill_(NaN));

describe("a run that diverges", () => {
  test("a NaN loss stops the run at its step, before the update; the last checkpoint is kept", () => {
    const dir = join(scratch, "loss");
    const t = trainer(dir, { steps: 10, checkpointEvery: 4, checkpointSeconds: 0, logEvery: 1 });
    const err = divergesAt(t, 6, (step) => step === 5 && nanFirstParameter(t));
    assert.match(err.message, /^training diverged at step 6: the loss is NaN \(learning rate [^)]+\); nothing was saved from it and .*checkpoint\.safetensors \(step 4\) is kept as the last good state;/);
    assert.equal(t.step, 5, "step 6 was not counted");
    assertGoodCheckpoint(dir, 4);
    const logged = readFileSync(join(dir, "log.jsonl"), "utf8").trim().split("\n");
    assert.equal(logged.length, 5, "entries for steps 1 to 5 only");
    close(t);
  });

  test("weights made non-finite by an update stop the run at that step, naming the parameter", () => {
    const dir = join(scratch, "update");
    const t = trainer(dir, { steps: 10, checkpointEvery: 2, checkpointSeconds: 0 });
    // A negative second moment makes AdamW's sqrt NaN: the loss and gradient of step 4 are fine.
    const poison = (step: number) => step === 3 && torch.noGrad(() => void t.optimizer.expAvgSq[0]!.fill_(-1));
    const err = divergesAt(t, 4, poison);
    const [first] = t.model.namedParameters();
    assert.match(err.message, new RegExp(`: the update made ${first![0].replace(/\./g, "\\.")} non-finite \\(`));
    assertGoodCheckpoint(dir, 2);
    close(t);
  });

  test("with no checkpoint yet, the message says so and none is written", () => {
    const dir = join(scratch, "none-yet");
    const t = trainer(dir, { steps: 10, checkpointEvery: 100, checkpointSeconds: 0 });
    const err = divergesAt(t, 3, (step) => step === 2 && nanFirstParameter(t));
    assert.match(err.message, /nothing was saved from it \(no checkpoint was due yet\);/);
    assert.ok(!existsSync(join(dir, "checkpoint.safetensors")));
    close(t);
  });

  test("a learning rate of 1e30 stops within a few steps, with no non-finite checkpoint", () => {
    const dir = join(scratch, "lr");
    const t = trainer(dir, { steps: 20, lr: 1e30, checkpointEvery: 1, checkpointSeconds: 0 });
    let caught: unknown;
    try {
      t.run();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof TrainingDivergedError, String(caught));
    assert.ok(caught.step <= 5, caught.message);
    assert.match(caught.message, /train again with a lower lr \(1e\+30 here\)$/);
    if (caught.step > 1) assertGoodCheckpoint(dir, caught.step - 1);
    close(t);
  });

  test("non-finite EMA weights at the end are refused: no checkpoint of them, an error instead of a model", () => {
    const dir = join(scratch, "ema");
    const t = trainer(dir, { steps: 3, checkpointEvery: 2, checkpointSeconds: 0 });
    let caught: unknown;
    try {
      t.run({ onStep: (info) => info.step === 3 && torch.noGrad(() => void t.ema!.shadow[1]!.fill_(Infinity)) });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof TrainingDivergedError, String(caught));
    assert.match(caught.message, /^training diverged at step 3: ema\.\S+ is not finite/);
    assertGoodCheckpoint(dir, 2);
    close(t);
  });

  test("saveCheckpoint refuses non-finite weights and leaves the checkpoint on disk as it was", () => {
    const dir = join(scratch, "save");
    const t = trainer(dir, { steps: 2, checkpointEvery: 2, checkpointSeconds: 0 });
    t.run();
    const before = readFileSync(join(dir, "checkpoint.safetensors"));
    nanFirstParameter(t);
    assert.throws(() => t.saveCheckpoint(), (err: Error) => err instanceof TrainingDivergedError && /model\.\S+ is not finite/.test(err.message));
    assert.deepEqual(readFileSync(join(dir, "checkpoint.safetensors")), before);
    close(t);
  });

  test("a NaN gradient stops the step before the update, and is not left to poison the next", () => {
    const t = trainer(join(scratch, "grads"), { steps: 10, checkpointEvery: 100, checkpointSeconds: 0, gradClip: 1 });
    t.trainStep();
    const [p] = t.model.parameters();
    const before = torch.noGrad(() => torch.keep(p!.detach().clone()));
    p!.grad = torch.keep(torch.zerosLike(p!).fill_(NaN)); // backward adds to it
    assert.throws(() => t.trainStep(), (err: Error) => err instanceof TrainingDivergedError && /^training diverged at step 2: the gradient norm is NaN/.test(err.message));
    assert.ok(torch.equal(p!, before), "the weights were not updated");
    assert.equal(t.step, 1);
    before.dispose();
    const info = t.trainStep();
    assert.ok(Number.isFinite(info.loss) && Number.isFinite(info.gradNorm), "the next step is a normal one");
    close(t);
  });
});
