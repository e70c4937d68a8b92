// `diffprune count` and `diffprune prune` end to end: what they print and write, and bad input
// that gets a one-line error, a non-zero exit and no output folder.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { saveFile } from "../../src/io/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { countOpsAndParams, unetForward } from "../../src/pruning/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-prune-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });

describe("diffprune count", () => {
  test("--json prints the counter's params and MACs; --config counts an architecture", () => {
    const r = run("count", "--model", fixture("unet-tiny"), "--json");
    assert.equal(r.status, 0, r.stderr);
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const expected = countOpsAndParams(model, unetForward(model));
    assert.deepEqual(JSON.parse(r.stdout), { params: expected.params, macs: expected.macs });
    model.dispose();
    const c = run("count", "--config", fixture("ddpm-cifar10-32.config.json"), "--json");
    assert.equal(c.status, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { params: number }).params, 35_746_307);
  });
});

describe("diffprune prune", () => {
  test("magnitude: a loadable smaller model folder and pruning.json", () => {
    const out = join(scratch, "magnitude");
    const r = run("prune", "--model", fixture("unet-tiny"), "--method", "magnitude", "--ratio", "0.3", "--out", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    const record = JSON.parse(readFileSync(join(out, "pruning.json"), "utf8")) as {
      method: string; params: { before: number; after: number }; macs: { before: number; after: number };
      layers: { name: string; out: [number, number] }[]; diff_pruning: unknown;
    };
    assert.equal(record.method, "magnitude");
    assert.equal(record.diff_pruning, null);
    const model = UNet2DModel.fromPretrained(out);
    assert.equal(model.numParameters(), record.params.after);
    assert.ok(record.params.after < record.params.before);
    assert.equal(countOpsAndParams(model, unetForward(model)).macs, record.macs.after);
    assert.deepEqual(record.layers.find((l) => l.name === "conv_in")!.out, [32, 24]);
    assert.ok(existsSync(join(out, "scheduler_config.json")));
    assert.deepEqual(JSON.parse(r.stdout).params, record.params);
    model.dispose();
  });

  test("diff-pruning from a calibration file: the loss per timestep and T' are recorded", () => {
    torch.manualSeed(1);
    const calib = join(scratch, "calibration.safetensors");
    torch.tidy(() => saveFile({ images: torch.rand([2, 1, 16, 16]).mul(2).sub(1), noise: torch.randn([2, 1, 16, 16]) }, calib));
    const out = join(scratch, "diff");
    const r = run("prune", "--model", fixture("unet-tiny"), "--method", "diff-pruning", "--ratio", "0.3", "--calibration", calib, "--thr", "0.5", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    const record = JSON.parse(readFileSync(join(out, "pruning.json"), "utf8")) as { diff_pruning: { losses: number[]; t_prime: number; thr: number }; calibration: { batch: number } };
    const { losses, t_prime, thr } = record.diff_pruning;
    assert.equal(thr, 0.5);
    assert.equal(losses.length, t_prime + 1);
    const max = Math.max(...losses);
    if (t_prime < 999) assert.ok(losses[t_prime]! < thr * max && losses.slice(0, t_prime).every((l, i) => l >= thr * Math.max(...losses.slice(0, i + 1))));
    assert.equal(record.calibration.batch, 2);
    assert.match(r.stderr, /gradients/, "progress of the gradient loop");
  });

  test("bad input: one line saying what to do, a non-zero exit, no output folder", () => {
    const badConfig = join(scratch, "bad-config.json");
    writeFileSync(badConfig, JSON.stringify({ _class_name: "UNet2DConditionModel" }));
    const wrongShape = join(scratch, "wrong-shape.safetensors");
    torch.tidy(() => saveFile({ images: torch.zeros([2, 3, 16, 16]), noise: torch.zeros([2, 3, 16, 16]) }, wrongShape));
    const tiny = ["--model", fixture("unet-tiny")];
    const cases: [string, string[], RegExp][] = [
      ["missing folder", ["--model", join(scratch, "nope"), "--method", "magnitude", "--ratio", "0.3"], /no such folder/],
      ["wrong model type", ["--config", badConfig, "--method", "magnitude", "--ratio", "0.3"], /only UNet2DModel is supported/],
      ["unreadable dataset", [...tiny, "--method", "taylor", "--ratio", "0.3", "--data", `folder:${join(scratch, "none")}`], /cannot read dataset|no such/i],
      ["ratio 1", [...tiny, "--method", "magnitude", "--ratio", "1"], /expected a number in \[0, 1\)/],
      ["unknown method", [...tiny, "--method", "best", "--ratio", "0.3"], /unknown pruning criterion "best"/],
      ["no calibration", [...tiny, "--method", "diff-pruning", "--ratio", "0.3"], /give --data SPEC .* or --calibration FILE/],
      ["calibration of another shape", [...tiny, "--method", "diff-pruning", "--ratio", "0.3", "--calibration", wrongShape], /images are \[2, 3, 16, 16\] but the model takes \[B, 1, 16, 16\]/],
      ["unknown layer to ignore", [...tiny, "--method", "magnitude", "--ratio", "0.3", "--ignore", "conv_nope"], /cannot ignore "conv_nope"/],
    ];
    for (const [what, args, message] of cases) {
      const out = join(scratch, `bad-${what.replace(/ /g, "-")}`);
      const r = run("prune", ...args, "--out", out);
      assert.notEqual(r.status, 0, what);
      assert.match(r.stderr, message, what);
      assert.equal(r.stderr.trim().split("\n").filter((l) => !l.startsWith("(add --help")).length, 1, `${what}: one line\n${r.stderr}`);
      assert.ok(!existsSync(out), `${what}: nothing written`);
    }
    const c = run("count", "--model", join(scratch, "nope"));
    assert.notEqual(c.status, 0);
    assert.match(c.stderr, /no such folder/);
  });
});
