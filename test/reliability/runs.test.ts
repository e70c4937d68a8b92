// The reliability table for training runs: `diffprune finetune --resume` on a run folder whose
// log or checkpoint is damaged, and runs that diverge. Each case copies one real run folder (made
// once, by the CLI) and damages the copy; a damaged folder must be refused in one line naming the
// file and what is wrong, before anything in it changes; a torn log tail is dropped with a warning.
import assert from "node:assert/strict";
import { appendFileSync, cpSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { load, parse, saveFile } from "../../src/io/index.js";
import { fixture, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { badInputs, runCli, type BadInput } from "./harness.js";

const scratch = scratchDir("diffprune-runs-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const model = join(scratch, "unet-tiny");
cpSync(fixture("unet-tiny"), model, { recursive: true });

/** Eight 16x16 gray images, so that the table needs no dataset installed. */
const images = tinyImageFolder(join(scratch, "images"));

const common = ["--data", `folder:${images}`, "--batch-size", "2"];
const finetune = (out: string, ...more: string[]): string[] => ["finetune", "--model", model, ...common, "--out", out, ...more];

/** A real run folder: 2 steps, a checkpoint after each (made once, by the CLI itself). */
let base: string | undefined;
function baseRun(): string {
  if (base) return base;
  const dir = join(scratch, "base");
  const r = runCli(finetune(dir, "--steps", "2", "--checkpoint-every", "1"));
  assert.equal(r.status, 0, r.stderr);
  rmSync(join(dir, "model"), { recursive: true });
  // Two log entries, as a longer run has, so that a bad line can sit before the last.
  const entry = readFileSync(join(dir, "log.jsonl"), "utf8");
  writeFileSync(join(dir, "log.jsonl"), entry.replace('"step":2', '"step":1') + entry);
  return (base = dir);
}

const checkpointOf = (dir: string): string => join(dir, "checkpoint.safetensors");
const stateOf = (dir: string): Record<string, unknown> => JSON.parse(parse(readFileSync(checkpointOf(dir)), "ckpt").metadata.trainer_state!) as Record<string, unknown>;

/** Rewrites the checkpoint of `dir` with its tensors edited and `state` as its trainer_state (none when undefined). */
function rewriteCheckpoint(dir: string, state: string | undefined, edit: (tensors: Map<string, torch.Tensor>) => void = () => {}): void {
  const tensors = load(readFileSync(checkpointOf(dir)), "ckpt");
  torch.noGrad(() => edit(tensors));
  saveFile(tensors, checkpointOf(dir), state === undefined ? {} : { trainer_state: state });
  torch.dispose([...tensors.values()]);
}
const withState = (change: (state: Record<string, unknown>) => unknown) => (dir: string) => rewriteCheckpoint(dir, JSON.stringify(change(stateOf(dir))));
const withOptions = (change: Record<string, unknown>) => withState((s) => ({ ...s, options: { ...(s.options as object), ...change } }));
const withTensors = (edit: (tensors: Map<string, torch.Tensor>) => void) => (dir: string) => rewriteCheckpoint(dir, JSON.stringify(stateOf(dir)), edit);
const firstKey = (tensors: Map<string, torch.Tensor>, prefix: string): string => [...tensors.keys()].find((k) => k.startsWith(prefix))!;

/** The log with line 1 replaced by `line`. */
const logLine1 = (line: string) => (dir: string) => {
  const log = join(dir, "log.jsonl");
  writeFileSync(log, readFileSync(log, "utf8").replace(/^.*\n/, line + "\n"));
};

let caseNumber = 0;
/** `finetune --resume` on a copy of the base run damaged by `damage`: refused, nothing in the folder changed. */
function damagedRun(name: string, damage: (dir: string) => void, message: RegExp, more: string[] = []): BadInput {
  const dir = join(scratch, `case-${caseNumber++}`);
  return {
    name,
    args: () => {
      cpSync(baseRun(), dir, { recursive: true });
      damage(dir);
      return finetune(dir, "--steps", "3", "--checkpoint-every", "1", "--resume", ...more);
    },
    message,
    noOutput: [join(dir, "model")],
    unchanged: [dir, model],
  };
}

/** `finetune --resume` on a copy of the base run whose log ends in a torn line: resumed, with a warning. */
function tornLog(name: string, damage: (dir: string) => void): BadInput {
  const c = damagedRun(name, damage, /^.*log\.jsonl: dropped a torn last line \(\d+ bytes, left by an interrupted write\)$/);
  return { ...c, noOutput: [], unchanged: [model], warning: true };
}

const ckpt = String.raw`checkpoint\.safetensors`;
const damagedState = (why: string) => new RegExp(`^diffprune: \\S+${ckpt}: trainer_state ${why}; the checkpoint is damaged: delete it to restart this run from step 0, or train into a new folder$`);
const badLine = (why: string) => new RegExp(`^diffprune: \\S+log\\.jsonl line 1 is not a log entry: ${why} .*; fix or delete that line \\(the log is a record only\\), or train into a new folder$`);

describe("finetune --resume: a damaged log", () => {
  badInputs([
    tornLog("a torn last log line (a crash mid-append) is dropped with a warning", (dir) => appendFileSync(join(dir, "log.jsonl"), '{"step":3,"loss":0.2')),
    tornLog("a last log line of NUL bytes (a crash before the data reached the disk) is dropped with a warning", (dir) => appendFileSync(join(dir, "log.jsonl"), "\0".repeat(40))),
    tornLog("a torn last log line with no checkpoint: the run restarts at step 0, with a warning", (dir) => {
      rmSync(checkpointOf(dir));
      appendFileSync(join(dir, "log.jsonl"), '{"st');
    }),
    damagedRun("a log line before the last that is not JSON", logLine1("{oops"), badLine("it is not JSON \\(.*\\)")),
    damagedRun("a log line before the last that is a JSON list", logLine1("[1,2,3]"), badLine("it is not a JSON object")),
    damagedRun("a log line before the last with no step", logLine1('{"loss":0.5}'), badLine("its step is missing, not a positive integer")),
    damagedRun("a log line before the last whose step is a string", logLine1('{"step":"1"}'), badLine('its step is "1", not a positive integer')),
    damagedRun("a log line before the last of binary garbage", logLine1("\u0001\u0002\u00ff\u0000garbage"), badLine("it is not JSON \\(.*\\)")),
  ]);
});

describe("finetune --resume: a damaged checkpoint", () => {
  badInputs([
    damagedRun("a checkpoint with no trainer_state", (dir) => rewriteCheckpoint(dir, undefined), new RegExp(`^diffprune: \\S+${ckpt} is not a diffprune training checkpoint \\(no trainer_state\\): train into a new folder$`)),
    damagedRun("trainer_state null", (dir) => rewriteCheckpoint(dir, "null"), damagedState("is null, not an object")),
    damagedRun("trainer_state that is not JSON", (dir) => rewriteCheckpoint(dir, '{"step":2,'), damagedState("is not JSON \\(.*\\)")),
    damagedRun("trainer_state without a step", withState((s) => ({ ...s, step: undefined })), damagedState("step is missing, not a count of steps")),
    damagedRun("trainer_state step null", withState((s) => ({ ...s, step: null })), damagedState("step is null, not a count of steps")),
    damagedRun("trainer_state step a string", withState((s) => ({ ...s, step: "2" })), damagedState('step is "2", not a count of steps')),
    damagedRun("trainer_state step negative", withState((s) => ({ ...s, step: -5 })), damagedState("step is -5, not a count of steps")),
    damagedRun("trainer_state ema_step fractional", withState((s) => ({ ...s, ema_step: 0.5 })), damagedState("ema_step is 0.5, not a count of steps")),
    damagedRun("trainer_state options null", withState((s) => ({ ...s, options: null })), damagedState("options is null, not an object")),
    damagedRun("trainer_state options.lr a string", withOptions({ lr: "fast" }), damagedState('options.lr is "fast", not a number')),
    damagedRun("trainer_state options.adamBetas of one number", withOptions({ adamBetas: [0.9] }), damagedState("options.adamBetas is \\[0.9\\], not 2 numbers")),
    damagedRun("trainer_state options.ema a string", withOptions({ ema: "yes" }), damagedState('options.ema is "yes", not a boolean')),
    damagedRun("trainer_state loss_window of strings", withState((s) => ({ ...s, loss_window: ["0.5"] })), damagedState('loss_window is \\["0.5"\\], not a list of losses')),
    damagedRun(
      "a checkpoint whose EMA weights hold NaN (from a run that diverged)",
      withTensors((t) => t.get(firstKey(t, "ema."))!.fill_(NaN)),
      new RegExp(`^diffprune: \\S+${ckpt} holds non-finite weights \\(ema\\.\\S+\\), from a run that diverged: delete it to restart this run from step 0, or train into a new folder$`),
    ),
    damagedRun(
      "a checkpoint whose optimizer state holds +Inf",
      withTensors((t) => t.get(firstKey(t, "optimizer."))!.fill_(Infinity)),
      new RegExp(`^diffprune: \\S+${ckpt} holds non-finite weights \\(optimizer\\.\\S+\\)`),
    ),
    damagedRun(
      "a checkpoint missing a model weight",
      withTensors((t) => void t.delete(firstKey(t, "model."))),
      new RegExp(`^diffprune: \\S+${ckpt}: the state dict does not match the model's: missing keys: `),
    ),
    damagedRun(
      "a checkpoint missing an optimizer moment",
      withTensors((t) => void t.delete("optimizer.exp_avg_sq.3")),
      new RegExp(`^diffprune: \\S+${ckpt}: optimizer state has no exp_avg_sq\\.3: it was saved for another model$`),
    ),
    damagedRun("a checkpoint missing an EMA weight", withTensors((t) => void t.delete(firstKey(t, "ema."))), new RegExp(`^diffprune: \\S+${ckpt} has no EMA weights for \\S+$`)),
    damagedRun("a checkpoint cut short", (dir) => truncateSync(checkpointOf(dir), 200), new RegExp(`^diffprune: \\S+${ckpt}: `)),
    damagedRun("a resume with another learning rate", () => {}, /was written with other settings \(lr: 0\.0001\); resume with the same settings or train into a new folder$/, ["--lr", "0.001"]),
  ]);
});

/** The model folder with its output convolution scaled by 1e30: finite weights whose loss overflows. */
function overflowingModel(): string {
  const dir = join(scratch, "overflowing");
  if (existsSync(dir)) return dir;
  cpSync(model, dir, { recursive: true });
  const file = join(dir, "diffusion_pytorch_model.safetensors");
  const tensors = load(readFileSync(file), file);
  torch.noGrad(() => tensors.get("conv_out.weight")!.mul_(1e30));
  saveFile(tensors, file);
  torch.dispose([...tensors.values()]);
  return dir;
}

describe("finetune: a run that diverges", () => {
  const out = join(scratch, "overflow-run");
  badInputs([
    {
      name: "a model whose loss overflows stops at step 1, naming it, and writes no model or checkpoint",
      args: () => ["finetune", "--model", overflowingModel(), ...common, "--out", out, "--steps", "3", "--checkpoint-every", "1"],
      message: /^diffprune: training diverged at step 1: the loss is (Infinity|NaN) \(learning rate [^)]+\); nothing was saved from it \(no checkpoint was due yet\); train again with a lower --lr \(0\.0001 here\)$/,
      noOutput: [join(out, "model"), checkpointOf(out)],
      unchanged: [model],
    },
  ]);

  test("a learning rate that diverges after some steps: the last line names the step, no model, the checkpoint kept is finite", () => {
    const dir = join(scratch, "lr-1");
    const r = runCli(finetune(dir, "--steps", "40", "--lr", "1", "--warmup", "0", "--checkpoint-every", "2"));
    assert.equal(r.status, 1, r.stderr);
    const last = r.stderr.trim().split("\n").at(-1)!;
    const m = /^diffprune: training diverged at step (\d+): .*; train again with a lower --lr \(1 here\)$/.exec(last);
    assert.ok(m, last);
    assert.doesNotMatch(r.stderr, /\n\s+at |node:internal/);
    assert.ok(!existsSync(join(dir, "model")), "no model written");
    const step = Number(m[1]);
    if (step > 2) {
      const bytes = readFileSync(checkpointOf(dir));
      const kept = (JSON.parse(parse(bytes, "ckpt").metadata.trainer_state!) as { step: number }).step;
      assert.ok(kept < step && kept % 2 === 0, `checkpoint of step ${kept}`);
      assert.match(last, new RegExp(`${ckpt} \\(step ${kept}\\) is kept as the last good state`));
      const tensors = load(bytes, "ckpt");
      for (const [name, t] of tensors) assert.equal(torch.tidy(() => t.isfinite().logicalNot().sum().item()), 0, `${name} is not finite`);
      torch.dispose([...tensors.values()]);
    }
  });
});

describe("finetune: stopped and resumed", () => {
  test("2 steps, then --resume to 4: the same model, byte for byte, as 4 steps in one go", () => {
    const whole = join(scratch, "whole");
    const halves = join(scratch, "halves");
    for (const [dir, steps] of [
      [whole, "4"],
      [halves, "2"],
      [halves, "4"],
    ] as const) {
      const r = runCli(finetune(dir, "--steps", steps, "--checkpoint-every", "2", ...(dir === halves && steps === "4" ? ["--resume"] : [])));
      assert.equal(r.status, 0, r.stderr);
    }
    const weights = (dir: string) => readFileSync(join(dir, "model", "diffusion_pytorch_model.safetensors"));
    assert.ok(weights(whole).equals(weights(halves)), "the resumed run's model differs");
    const steps = readFileSync(join(halves, "log.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(steps, [2, 4], "each run's last step logged, none twice");
  });
});
