// What the commands leave on disk: a model or sample folder appears whole or not at all, a rerun
// replaces it whole (no file of the old run next to the new record), and what a killed run left
// (temp files and folders) is removed by the next run that writes there.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { UNet2DModel } from "../../src/models/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-outputs-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1" };
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env });
const model = fixture("unet-tiny");
const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid!;
const hidden = (dir: string) => readdirSync(dir).filter((n) => n.startsWith("."));

describe("prune --out", () => {
  test("a rerun replaces the folder whole: the record describes the weights next to it", () => {
    const out = join(scratch, "runs", "pruned");
    assert.equal(run("prune", "--model", model, "--method", "magnitude", "--ratio", "0.3", "--out", out).status, 0);
    writeFileSync(join(out, "pruning.json.bak"), "not prune's"); // a user's file: the next run refuses to replace the folder
    const refused = run("prune", "--model", model, "--method", "magnitude", "--ratio", "0.5", "--out", out);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /it holds pruning\.json\.bak, which are not a pruned model/);
    rmSync(join(out, "pruning.json.bak"));
    const r = run("prune", "--model", model, "--method", "magnitude", "--ratio", "0.5", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    const record = JSON.parse(readFileSync(join(out, "pruning.json"), "utf8")) as { ratio: number; params: { after: number } };
    assert.equal(record.ratio, 0.5);
    const pruned = UNet2DModel.fromPretrained(out);
    assert.equal(pruned.numParameters(), record.params.after);
    pruned.dispose();
    assert.deepEqual(readdirSync(out).sort(), ["config.json", "diffusion_pytorch_model.safetensors", "pruning.json", "scheduler_config.json"]);
    assert.deepEqual(hidden(join(scratch, "runs")), []);
  });

  test("a failed prune leaves no folder, no temp folder and no parents it made", () => {
    const out = join(scratch, "failed", "deep", "pruned");
    const r = run("prune", "--model", model, "--method", "magnitude", "--ratio", "0.3", "--ignore", "conv_nope", "--out", out);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot ignore "conv_nope"/);
    assert.ok(!existsSync(join(scratch, "failed")));
  });

  test("what a killed prune left beside --out (a half-written folder, a half-written file) is removed by the next prune there", () => {
    const parent = join(scratch, "killed");
    mkdirSync(parent);
    const hourAgo = new Date(Date.now() - 3600e3);
    const half = join(parent, `.pruned.${deadPid()}.0123456789ab.tmp`);
    mkdirSync(half);
    writeFileSync(join(half, "diffusion_pytorch_model.safetensors"), "half");
    const halfFile = join(parent, `.notes.txt.${deadPid()}.ba9876543210.tmp`);
    writeFileSync(halfFile, "half");
    for (const p of [half, halfFile]) utimesSync(p, hourAgo, hourAgo);
    assert.equal(run("prune", "--model", model, "--method", "random", "--ratio", "0.3", "--out", join(parent, "pruned")).status, 0);
    assert.deepEqual(readdirSync(parent), ["pruned"]);
  });
});

describe("sample --out", () => {
  test("a rerun with fewer images replaces the set whole", () => {
    const out = join(scratch, "samples");
    assert.equal(run("sample", "--model", model, "--num", "3", "--steps", "2", "--out", out).status, 0);
    assert.equal(readdirSync(out).length, 5);
    const r = run("sample", "--model", model, "--num", "1", "--steps", "2", "--seed", "1", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ["00000.png", "grid.png", "samples.safetensors"]);
  });

  test("killed while writing: --out is absent or complete, never partial; the next run cleans up", async () => {
    const parent = join(scratch, "kill-sample");
    mkdirSync(parent);
    const out = join(parent, "out");
    const child = spawn(process.execPath, [main, "sample", "--model", model, "--num", "200", "--steps", "2", "--out", out], { env, stdio: "ignore" });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    // Kill as soon as the folder is being built beside --out.
    let sawTemp = false;
    while (child.exitCode === null) {
      if (hidden(parent).length > 0) {
        sawTemp = true;
        child.kill("SIGKILL");
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await exited;
    assert.ok(sawTemp, "the images are written into a temp folder beside --out");
    assert.ok(!existsSync(out) || readdirSync(out).length === 202, "absent or complete");
    // Our own pid is not the killed writer's, and its temp is older than the next process.
    const r = run("sample", "--model", model, "--num", "2", "--steps", "2", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(parent), ["out"]);
    assert.equal(readdirSync(out).length, 4);
  });
});

describe("eval --out", () => {
  test("writes into folders it makes; an input copied elsewhere is fine to write beside", () => {
    const copy = join(scratch, "copy");
    cpSync(model, copy, { recursive: true });
    const out = join(scratch, "metrics", "a", "b.json");
    const r = run("eval", "--model", copy, "--latency", "--latency-batch", "1", "--repeats", "1", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(JSON.parse(readFileSync(out, "utf8")).latency);
  });
});
