// Sampling through onnxruntime: diffprune's schedulers driving the exported UNet (generateAsync)
// give the images that libtorch gives from the same noise; and the commands end to end, on a
// pruned folder: export, then sample with --runtime onnxruntime and --runtime libtorch.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile, saveFile } from "../../src/io/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { generate, generateAsync, loadScheduler, samplingScheduler, type SchedulerName } from "../../src/diffusion/index.js";
import { pruneModelFolder } from "../../src/workflow/index.js";
import { exportUNet, loadOnnxPipeline, OnnxSession, OnnxUNet } from "../../src/export/index.js";
import { fixture, repoRoot, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-onnx-sample-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });

// One forward differs by about 2e-6 between the runtimes; the DDIM loop amplifies that (test/
// diffusion/scheduler-fixtures: 3e-7 changes to every epsilon move a 10-step loop's output by
// up to 1.5e-4). Measured here over 4-6 steps: at most 6e-5.
const SAMPLING_TOLERANCE = 2e-4;

describe("sampling through onnxruntime", () => {
  for (const name of ["ddim", "ddpm"] as SchedulerName[]) {
    test(`generateAsync with the exported model gives generate's samples (${name}, same noise and seed)`, async (t) => {
      const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
      const base = loadScheduler(fixture("unet-tiny"));
      const onnx = new OnnxUNet(await OnnxSession.create(exportUNet(model).bytes), model.config);
      torch.manualSeed(11);
      const noise = torch.randn([3, 1, 16, 16]);
      const options = { numInferenceSteps: 6, batchSize: 2 };
      torch.manualSeed(5);
      const reference = generate(model, samplingScheduler(base, name), noise, options);
      torch.manualSeed(5); // DDPM's steps draw noise: the same draws in both loops
      const actual = await generateAsync(onnx, samplingScheduler(base, name), noise, options);
      assert.deepEqual(actual.shape, reference.shape);
      const error = maxAbsDiff(actual, reference);
      t.diagnostic(`unet-tiny, ${name}, 6 steps: max |onnxruntime - libtorch| = ${error.toExponential(2)}`);
      assert.ok(error <= SAMPLING_TOLERANCE, `max error ${error}`);
      await onnx.release();
      model.dispose();
      base.dispose();
    });
  }

  test("the exported model in diffprune's DDIM loop reproduces diffusers' (the paper's sampler, 10 steps)", async (t) => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const base = loadScheduler(fixture("unet-tiny"));
    const onnx = new OnnxUNet(await OnnxSession.create(exportUNet(model).bytes), model.config);
    const reference = loadFile(fixture("unet-tiny", "schedulers.safetensors"));
    const out = await generateAsync(onnx, samplingScheduler(base, "ddim"), reference.get("ddim_init")!, { numInferenceSteps: 10 });
    // the tolerances of the same loop in libtorch (test/diffusion/scheduler-fixtures)
    const diff = out.sub(reference.get("ddim_out")!).abs().toArray();
    t.diagnostic(`unet-tiny, DDIM 10 steps: max |onnxruntime - diffusers| = ${Math.max(...diff).toExponential(2)}`);
    assert.ok(Math.max(...diff) < 5e-4, `max |diff| ${Math.max(...diff)}`);
    assert.ok(diff.reduce((a, b) => a + b, 0) / diff.length < 5e-5, "mean |diff|");
    await onnx.release();
    model.dispose();
    base.dispose();
    torch.dispose([...reference.values(), out]);
  });

  test("diffprune export and sample --runtime onnxruntime on a pruned folder give libtorch's images", async (t) => {
    const pruned = join(scratch, "pruned");
    pruneModelFolder({ model: fixture("unet-tiny"), method: "magnitude", ratio: 0.3, out: pruned });
    const file = join(scratch, "model", "pruned.onnx");
    const exported = run("export", "--model", pruned, "--format", "onnx", "--out", file, "--json");
    assert.equal(exported.status, 0, exported.stderr);
    const report = JSON.parse(exported.stdout) as { out: string; opset: number; params: number };
    assert.equal(report.out, file);
    assert.ok(report.opset >= 17);
    const { model, scheduler } = await loadOnnxPipeline(file);
    assert.equal(model.config.sample_size, 16);
    assert.equal(scheduler.className, loadScheduler(pruned).className);
    await model.release();

    torch.manualSeed(3);
    const noise = join(scratch, "noise.safetensors");
    saveFile({ noise: torch.randn([2, 1, 16, 16]) }, noise);
    const samples: Record<string, torch.Tensor> = {};
    for (const [runtime, modelArg] of [["libtorch", pruned], ["onnxruntime", file]] as const) {
      const out = join(scratch, `samples-${runtime}`);
      const r = run("sample", "--runtime", runtime, "--model", modelArg, "--init-noise", noise, "--steps", "4", "--out", out, "--json");
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { out, num: 2, steps: 4, runtime });
      samples[runtime] = loadFile(join(out, "samples.safetensors")).get("samples")!;
    }
    const error = maxAbsDiff(samples.onnxruntime!, samples.libtorch!);
    t.diagnostic(`unet-tiny pruned 30%, the CLI, 4 steps: max |onnxruntime - libtorch| = ${error.toExponential(2)}`);
    assert.ok(error <= SAMPLING_TOLERANCE, `max |onnxruntime - libtorch| over the samples: ${error}`);
  });

  test("an .onnx file that diffprune did not write, or a file that is not ONNX, is refused in one line", () => {
    const notOnnx = join(scratch, "not.onnx");
    writeFileSync(notOnnx, "hello");
    const r = run("sample", "--runtime", "onnxruntime", "--model", notOnnx, "--out", join(scratch, "x"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^diffprune: .*not\.onnx (is not an ONNX model|has no unet_config)/);
    const missing = run("sample", "--runtime", "onnxruntime", "--model", join(scratch, "none.onnx"), "--out", join(scratch, "y"));
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /--model .*none\.onnx: no such file/);
  });
});
