// `diffprune sample --class-labels` on a class-conditional model: the images of the library's
// generate with the same labels and noise, the classes in turn by default, and labels the model
// cannot take refused (1) or malformed (2).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile, writeJsonAtomic } from "../../src/io/index.js";
import { UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { generate, initialNoise, loadPipeline, samplingScheduler } from "../../src/diffusion/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-class-labels-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });

/** unet-tiny's architecture with a 4-class table, random weights, and its scheduler. */
function conditionalModel(): string {
  const dir = join(scratch, "conditional");
  const config = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as UNet2DConfig;
  torch.manualSeed(0);
  const model = torch.noGrad(() => new UNet2DModel({ ...config, num_class_embeds: 4 }));
  model.savePretrained(dir);
  writeJsonAtomic(join(dir, "scheduler_config.json"), JSON.parse(readFileSync(fixture("unet-tiny", "scheduler_config.json"), "utf8")));
  model.dispose();
  return dir;
}
const model = conditionalModel();

describe("sample --class-labels", () => {
  test("gives the library's images for the same labels and noise; the classes in turn by default", () => {
    const out = join(scratch, "s1");
    const r = run("sample", "--model", model, "--out", out, "--num", "2", "--steps", "2", "--class-labels", "1,3");
    assert.equal(r.status, 0, r.stderr);
    const { model: m, scheduler } = loadPipeline({ model });
    const noise = initialNoise(m, { num: 2, seed: 0 });
    const expected = generate(m, samplingScheduler(scheduler, "ddim"), noise, { numInferenceSteps: 2, classLabels: [1, 3] });
    const got = loadFile(join(out, "samples.safetensors")).get("samples")!;
    assert.ok(maxAbsDiff(got, expected) <= 1e-4, "the CLI's samples are generate's (the CLI runs on one thread, this process maybe on more)");
    const other = generate(m, samplingScheduler(scheduler, "ddim"), noise, { numInferenceSteps: 2, classLabels: [0, 1] });
    assert.ok(maxAbsDiff(other, expected) > 1e-2, "the labels change the images");

    const cycled = run("sample", "--model", model, "--out", join(scratch, "s2"), "--num", "2", "--steps", "2");
    assert.equal(cycled.status, 0, cycled.stderr);
    assert.match(cycled.stderr, /sampling its classes in turn/);
    assert.ok(maxAbsDiff(loadFile(join(scratch, "s2", "samples.safetensors")).get("samples")!, other) <= 1e-4, "classes 0, 1 by default");
    m.dispose();
  });

  test("a label the model does not have is refused (1); a malformed list is a usage error (2)", () => {
    const big = run("sample", "--model", model, "--out", join(scratch, "s3"), "--num", "2", "--steps", "2", "--class-labels", "9");
    assert.equal(big.status, 1, big.stderr);
    assert.match(big.stderr, /the largest class label is 9, but the model has num_class_embeds 4/);
    const bad = run("sample", "--model", model, "--out", join(scratch, "s4"), "--class-labels", "a,b");
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /expected class numbers 0, 1, \.\.\. separated by commas/);
    const unconditional = run("sample", "--model", fixture("unet-tiny"), "--out", join(scratch, "s5"), "--num", "1", "--steps", "2", "--class-labels", "1");
    assert.equal(unconditional.status, 1);
    assert.match(unconditional.stderr, /not class-conditional/);
  });
});
