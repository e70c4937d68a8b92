// The `diffprune` command end to end: sampling writes what it promises, and bad input gets a
// one-line error and a non-zero exit, with nothing half-written.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile, readImage, saveFile } from "../../src/io/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-cli-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("diffprune sample", () => {
  test("from given initial noise: PNGs, a grid and the raw samples; same noise, same samples", () => {
    torch.manualSeed(3);
    const noiseFile = join(scratch, "noise.safetensors");
    saveFile({ noise: torch.randn([3, 1, 16, 16]) }, noiseFile);
    const out = join(scratch, "samples");
    const r = run("sample", "--model", fixture("unet-tiny"), "--steps", "4", "--init-noise", noiseFile, "--out", out);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ["00000.png", "00001.png", "00002.png", "grid.png", "samples.safetensors"]);
    const samples = loadFile(join(out, "samples.safetensors")).get("samples")!;
    assert.deepEqual(samples.shape, [3, 1, 16, 16]);
    const img = readImage(join(out, "00001.png"));
    assert.deepEqual([img.width, img.height, img.channels], [16, 16, 1]);
    // the PNG is the sample mapped from [-1, 1] to [0, 255]
    const expected = samples.select(0, 1).add(1).mul(127.5).clamp(0, 255).toArray();
    const worst = Array.from(img.data).reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0);
    assert.ok(worst <= 1, `PNG differs from the sample by ${worst}`);
    const again = join(scratch, "again");
    assert.equal(run("sample", "--model", fixture("unet-tiny"), "--steps", "4", "--init-noise", noiseFile, "--out", again).status, 0);
    assert.ok(torch.equal(loadFile(join(again, "samples.safetensors")).get("samples")!, samples));
  });

  test("seeded noise (--num, --seed) with DDPM steps", () => {
    const out = join(scratch, "ddpm");
    const r = run("sample", "--model", fixture("unet-tiny-legacy"), "--scheduler", "ddpm", "--steps", "3", "--num", "2", "--seed", "5", "--out", out);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(loadFile(join(out, "samples.safetensors")).get("samples")!.shape, [2, 3, 16, 16]);
  });
});

describe("bad input", () => {
  const notModel = join(scratch, "not-a-model");
  mkdirSync(notModel);
  const cases: [string, string[], RegExp][] = [
    ["a missing model folder", ["sample", "--model", join(scratch, "nope"), "--out", join(scratch, "o1")], /no such folder/],
    ["a folder that is not a model", ["sample", "--model", notModel, "--out", join(scratch, "o2")], /neither config.json nor unet\/config.json/],
    ["an invalid number", ["sample", "--model", fixture("unet-tiny"), "--steps", "ten", "--out", join(scratch, "o3")], /expected a positive integer/],
    ["an unknown scheduler", ["sample", "--model", fixture("unet-tiny"), "--scheduler", "euler", "--out", join(scratch, "o4")], /expected one of ddim, ddpm/],
    ["noise of the wrong shape", ["sample", "--model", fixture("unet-tiny"), "--init-noise", fixture("unet-tiny", "forward.safetensors"), "--out", join(scratch, "o5")], /has no tensor named "noise"/],
    ["an unreadable dataset", ["train", "--config", fixture("unet-tiny", "config.json"), "--data", "folder:" + join(scratch, "none"), "--out", join(scratch, "o6"), "--steps", "1"], /cannot read dataset/],
    ["an unknown dataset", ["train", "--config", fixture("unet-tiny", "config.json"), "--data", "mnist", "--out", join(scratch, "o7"), "--steps", "1"], /unknown dataset spec "mnist"/],
    ["a missing config", ["train", "--config", join(scratch, "none.json"), "--data", "fashion-mnist", "--out", join(scratch, "o8")], /cannot read --config/],
    ["an unknown --skip", ["sample", "--model", fixture("unet-tiny"), "--skip", "cubic", "--out", join(scratch, "o9")], /expected one of uniform, quad, leading, linspace, trailing, config, ddim-quad/],
    ["one step with the paper's sampler", ["sample", "--model", fixture("unet-tiny"), "--steps", "1", "--num", "1", "--out", join(scratch, "o10")], /skip "uniform" needs at least 2 inference steps.*use skip "leading"/],
  ];
  for (const [what, args, message] of cases) {
    test(what, () => {
      const r = run(...args);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, message);
      const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("(") && !l.startsWith("Usage") && l.trim() !== "");
      assert.ok(lines.length <= 2, `a short error, got:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    });
  }

  test("nothing half-written on failure", () => {
    for (const o of ["o1", "o2", "o3", "o4", "o5", "o9", "o10"]) assert.ok(!existsSync(join(scratch, o, "samples.safetensors")), o);
  });
});
