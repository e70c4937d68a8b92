// Consistency: SSIM and MSE between two models' samples from the same noise (DDIM, eta 0).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDIMScheduler, generate, loadScheduler } from "../../src/diffusion/index.js";
import { compareSamples, consistency } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

describe("consistency", () => {
  test("a model against itself: SSIM 1, MSE 0, identical samples", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const scheduler = loadScheduler(fixture("unet-tiny"));
    torch.manualSeed(1);
    const noise = torch.randn([3, 1, 16, 16]);
    const c = consistency(model, model, scheduler, noise, { steps: 3 });
    assertClose([c.ssim], [1], 1e-6, "SSIM");
    assert.equal(c.mse, 0);
    assert.equal(c.perImage.length, 3);
    assert.ok(torch.equal(c.samples, c.referenceSamples));
    model.dispose();
  });

  test("by default both models are sampled with the paper's sampler (skip uniform)", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const scheduler = loadScheduler(fixture("unet-tiny"));
    torch.manualSeed(3);
    const noise = torch.randn([2, 1, 16, 16]);
    const c = consistency(model, model, scheduler, noise, { steps: 4 });
    const sampled = (skip: "uniform" | "leading") => generate(model, new DDIMScheduler(scheduler.config), noise, { numInferenceSteps: 4, eta: 0, skip });
    assert.ok(torch.equal(c.samples, sampled("uniform")));
    assert.ok(!torch.equal(c.samples, sampled("leading")), "not diffusers' leading spacing");
    model.dispose();
  });

  test("different images: SSIM below 1, MSE on the [0, 1] scale", () => {
    torch.manualSeed(2);
    const a = torch.rand([2, 1, 16, 16]).mul(2).sub(1);
    const b = a.add(torch.randn([2, 1, 16, 16]).mul(0.2));
    const c = compareSamples(a, b);
    assert.ok(c.ssim < 0.99 && c.ssim > 0, `SSIM ${c.ssim}`);
    const expected = torch.mseLoss(a.add(1).div(2).clamp(0, 1), b.add(1).div(2).clamp(0, 1)).item();
    assertClose([c.mse], [expected], 1e-7, "MSE");
    assert.throws(() => compareSamples(a, torch.zeros([2, 1, 8, 8])), /differ in shape/);
  });
});
