// The peer that bench/train.ts times against (bench/peer_unet.py: diffusers 0.17's UNet2DModel on
// python3-torch) computes what our UNet2DModel computes, so its timings are of the same work: on
// the shipped model's weights and on the ddpm-cifar10-32 architecture its forward equals ours, and
// on the diffusers fixtures it equals diffusers' own output. Skipped where python3-torch is not
// installed (`sh scripts/setup.sh --bench` installs it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test, type TestContext } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { loadFile, saveFile } from "../../src/io/index.js";
import { UNet2DModel, WEIGHTS_NAME } from "../../src/models/index.js";
import { hasPythonTorch, peerScript, PYTHON } from "../../bench/common.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";

const TOLERANCE = 1e-4;
const skip = hasPythonTorch() ? false : "python3-torch is not installed (sh scripts/setup.sh --bench installs it)";
const scratch = scratchDir("diffprune-peer-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The peer's forward of the model folder `dir` on `inputs` ("sample", int64 "timestep" [B]). */
function peerForward(dir: string, inputs: string): Tensor {
  const output = join(scratch, "peer-out.safetensors");
  const args = [peerScript("peer_unet.py"), "--config", join(dir, "config.json"), "--weights", join(dir, WEIGHTS_NAME), "--forward", inputs, output];
  const run = spawnSync(PYTHON, args, { encoding: "utf8" });
  assert.equal(run.status, 0, `peer_unet.py failed: ${run.stderr}`);
  return loadFile(output).get("sample")!;
}

/** Our forward and the peer's on the same seeded input and timesteps; returns the max abs difference. */
function compareWithOurs(t: TestContext, dir: string, model: UNet2DModel, timesteps: number[]): number {
  const c = model.config;
  torch.manualSeed(1);
  const sample = torch.randn([timesteps.length, c.in_channels, c.sample_size, c.sample_size]);
  const timestep = torch.tensor(timesteps, { dtype: "int64" });
  const inputs = join(scratch, "inputs.safetensors");
  saveFile(new Map([["sample", sample], ["timestep", timestep]]), inputs);
  const ours = torch.noGrad(() => model.eval().forward(sample, timestep));
  const diff = maxAbsDiff(ours, peerForward(dir, inputs));
  t.diagnostic(`max |ours - peer| = ${diff.toExponential(2)}`);
  return diff;
}

describe("bench/peer_unet.py computes our UNet2DModel's function", { skip }, () => {
  test("the shipped Fashion-MNIST model: the same output as ours", (t) => {
    const dir = join(repoRoot(), "models/fashion-mnist");
    const model = UNet2DModel.fromPretrained(dir);
    assert.ok(compareWithOurs(t, dir, model, [0, 250, 600, 999]) <= TOLERANCE);
    model.dispose();
  });

  test("the ddpm-cifar10-32 architecture (random weights): the same output as ours", (t) => {
    const config = JSON.parse(readFileSync(fixture("ddpm-cifar10-32.config.json"), "utf8")) as Record<string, unknown>;
    torch.manualSeed(0);
    const model = torch.noGrad(() => new UNet2DModel(config));
    const dir = join(scratch, "cifar10");
    model.savePretrained(dir);
    assert.ok(compareWithOurs(t, dir, model, [17, 801]) <= TOLERANCE);
    model.dispose();
  });

  for (const name of ["unet-tiny", "unet-tiny-legacy"]) {
    test(`${name}: diffusers 0.17's own output`, (t) => {
      const diff = maxAbsDiff(peerForward(fixture(name), fixture(name, "forward.safetensors")), loadFile(fixture(name, "forward.safetensors")).get("expected")!);
      t.diagnostic(`max |peer - diffusers| = ${diff.toExponential(2)}`);
      assert.ok(diff <= TOLERANCE);
    });
  }
});
