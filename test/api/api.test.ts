// The package's TypeScript API, used the way README's example uses it: load, prune with
// Diff-Pruning, fine-tune, sample from shared noise, compare with the original.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compareSamples,
  countOpsAndParams,
  diffusion,
  generate,
  loadScheduler,
  pruneUNet,
  samplingScheduler,
  torch,
  Trainer,
  UNet2DModel,
  unetForward,
} from "../../src/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { randomImages } from "../helpers/metrics.js";

test("load, prune (diff-pruning), fine-tune, sample and compare through the top-level exports", () => {
  const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
  const original = UNet2DModel.fromPretrained(fixture("unet-tiny"));
  const scheduler = loadScheduler(fixture("unet-tiny"));
  torch.manualSeed(0);
  const calibration = { images: torch.keep(torch.rand([2, 1, 16, 16]).mul(2).sub(1)), noise: torch.keep(torch.randn([2, 1, 16, 16])) };

  const report = pruneUNet(model, { criterion: "diff-pruning", ratio: 0.3, scheduler, calibration, thr: 0.05 });
  assert.ok(report.after.params < report.before.params && report.after.macs < report.before.macs);
  assert.equal(report.after.macs, countOpsAndParams(model, unetForward(model)).macs);
  assert.ok(report.gradients && report.gradients.losses.length === report.gradients.tPrime + 1);

  const trainer = new Trainer(model, scheduler, randomImages(16, 16, 1), scratchDir("api-finetune"), { steps: 2, batchSize: 4, warmupSteps: 0, checkpointEvery: 2 });
  trainer.run();
  assert.equal(trainer.step, 2);

  const noise = torch.keep(torch.randn([3, 1, 16, 16]));
  const ddim = samplingScheduler(scheduler, "ddim");
  const [a, b] = [model, original].map((m) => diffusion.withWeights(m, m === model ? trainer.finalWeights() : m.parameters(), () => generate(m, ddim, noise, { numInferenceSteps: 2, eta: 0 })));
  const c = compareSamples(a!, b!);
  assert.ok(c.ssim > -1 && c.ssim < 1 && c.mse > 0, JSON.stringify(c));
  trainer.dispose();
  torch.dispose([a!, b!, noise, calibration.images, calibration.noise]);
  model.dispose();
  original.dispose();
});
