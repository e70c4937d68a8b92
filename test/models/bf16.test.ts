// bfloat16 inference: a UNet cast with to("bfloat16") runs in bfloat16 (its norms and SiLU widened
// to float32 inside) and predicts what float32 does to bfloat16's precision; sampling widens the
// prediction, so the scheduler's arithmetic and the samples stay float32; `sample` and `eval`
// take --dtype bf16.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { GroupNorm, SiLU } from "../../src/nn/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler, generate, samplingScheduler } from "../../src/diffusion/index.js";
import { compareSamples } from "../../src/metrics/index.js";
import { evalAction } from "../../src/cli/eval.js";
import { spawnSync } from "node:child_process";
import { fixture, repoRoot } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const runCli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot(), "dist", "src", "cli", "main.js"), ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });
const scratch = mkdtempSync(join(tmpdir(), "diffprune-bf16-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** ||a - b|| / ||b||, in float32. */
const relativeError = (a: torch.Tensor, b: torch.Tensor): number => torch.tidy(() => a.float().sub(b.float()).norm().item() / b.float().norm().item());

describe("bfloat16 inference", () => {
  test("layers: GroupNorm and SiLU on bfloat16 give float32's result rounded to bfloat16", () => {
    torch.manualSeed(0);
    const norm = new GroupNorm(2, 8);
    torch.noGrad(() => [norm.param("weight"), norm.param("bias")].forEach((p) => p.copy_(torch.randn([8]))));
    const x = torch.randn([2, 8, 4, 4]).mul(3).add(1);
    torch.tidy(() => {
      const wide = norm.forward(x);
      const y = norm.to("bfloat16").forward(x.to("bfloat16"));
      assert.equal(y.dtype, "bfloat16");
      // bfloat16 keeps 8 bits of mantissa: a relative 2^-8 per element, of values up to ~10
      assert.ok(maxAbsDiff(y, wide) < 0.08, `group norm differs by ${maxAbsDiff(y, wide)}`);
      const s = new SiLU().forward(x.to("bfloat16"));
      assert.equal(s.dtype, "bfloat16");
      assert.ok(relativeError(s, x.silu()) < 4e-3);
    });
    norm.dispose();
    x.dispose();
  });

  test("a UNet cast to bfloat16 predicts diffusers' float32 output to bfloat16 precision", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny")).to("bfloat16");
    assert.equal(model.dtype, "bfloat16");
    const f = loadFile(fixture("unet-tiny", "forward.safetensors"));
    torch.tidy(() => {
      const out = torch.noGrad(() => model.forward(f.get("sample")!, f.get("timestep")!));
      assert.equal(out.dtype, "bfloat16");
      const err = relativeError(out, f.get("expected")!);
      assert.ok(err > 0 && err < 0.02, `relative error ${err}`);
    });
    model.dispose();
  });

  test("sampling a bfloat16 model gives float32 samples close to float32's from the same noise", () => {
    const wide = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const narrow = UNet2DModel.fromPretrained(fixture("unet-tiny")).to("bfloat16");
    const scheduler = samplingScheduler(new DDPMScheduler(), "ddim");
    torch.manualSeed(1);
    const c = wide.config;
    const noise = torch.randn([4, c.in_channels, c.sample_size, c.sample_size]);
    const a = generate(wide, scheduler, noise, { numInferenceSteps: 10 });
    const b = generate(narrow, scheduler, noise, { numInferenceSteps: 10 });
    assert.equal(b.dtype, "float32");
    const { ssim } = compareSamples(b, a);
    // the fixture's random weights amplify rounding over 10 steps (0.84 here); samples from other
    // noise score near 0
    assert.ok(ssim > 0.75 && maxAbsDiff(a, b) > 0, `SSIM ${ssim}`);
    torch.dispose([noise, a, b]);
    wide.dispose();
    narrow.dispose();
  });

  test("sample --dtype bf16 writes images; with --runtime onnxruntime it is refused", () => {
    const out = join(scratch, "samples");
    const ok = runCli(["sample", "--model", fixture("unet-tiny"), "--num", "2", "--steps", "2", "--dtype", "bf16", "--out", out, "--json"]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).num, 2);
    const bad = runCli(["sample", "--model", join(scratch, "none.onnx"), "--runtime", "onnxruntime", "--dtype", "bf16", "--out", out]);
    assert.notEqual(bad.status, 0);
    const wrong = runCli(["sample", "--model", fixture("unet-tiny"), "--dtype", "float16", "--out", out]);
    assert.match(wrong.stderr, /expected one of float32, bf16/);
  });

  test("eval --dtype bf16 against the same model in float32: SSIM near 1, latency of both", () => {
    const out = join(scratch, "bf16.json");
    evalAction({ model: fixture("unet-tiny"), reference: fixture("unet-tiny"), ssim: true, latency: true, num: 4, steps: 4, skip: "uniform", seed: 0, batchSize: 64, data: "fashion-mnist", extractor: "classifier", latencyBatch: 2, repeats: 1, dtype: "bf16", out });
    const m = JSON.parse(readFileSync(out, "utf8")) as { ssim: { mean: number; mse: number }; latency: { model: unknown[]; reference: unknown[] } };
    assert.ok(m.ssim.mean > 0.9 && m.ssim.mean < 1 + 1e-9, `SSIM ${m.ssim.mean}`);
    assert.ok(m.ssim.mse > 0, "bfloat16 must change the samples a little");
    assert.equal(m.latency.model.length, 2);
  });
});
