// evaluate(): one report with FID for model and reference, consistency and latency, on the
// samples as saved (8-bit).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { imageFromTensor } from "../../src/io/index.js";
import { toNormalizedTensor } from "../../src/data/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { loadScheduler } from "../../src/diffusion/index.js";
import { evaluate, quantize8bit } from "../../src/metrics/index.js";
import { countOpsAndParams, unetForward } from "../../src/pruning/index.js";
import { fixture } from "../helpers/fixtures.js";
import { randomImages, RowMeans, useScratchCache } from "../helpers/metrics.js";

const rowMeans = new RowMeans(16);
useScratchCache("diffprune-evaluate-");

describe("evaluate", () => {
  test("quantize8bit gives the PNG writer's bytes, mapped as datasets map bytes", () => {
    torch.manualSeed(0);
    const x = torch.rand([1, 16, 16]).mul(2.4).sub(1.2);
    assert.ok(torch.equal(quantize8bit(x.unsqueeze(0)), toNormalizedTensor(imageFromTensor(x).data, [1, 1, 16, 16])));
  });

  test("a model against itself: equal FIDs, SSIM 1, MSE 0, params, null MACs, speed-ups", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const dataset = randomImages(40, 16, 1);
    torch.manualSeed(2);
    const stages = new Set<string>();
    const r = evaluate({
      model,
      reference: model,
      scheduler: loadScheduler(fixture("unet-tiny")),
      noise: torch.randn([4, 1, 16, 16]),
      steps: 2,
      fid: { extractor: rowMeans, dataset, spec: "random-bytes" },
      ssim: true,
      latency: { batchSizes: [1, 2], warmup: 0, repeats: 1 },
      onProgress: (stage) => stages.add(stage),
    });
    assert.equal(r.params.model, model.numParameters());
    const macs = countOpsAndParams(model, unetForward(model)).macs;
    assert.ok(macs > 0);
    assert.deepEqual(r.macs, { model: macs, reference: macs });
    assert.deepEqual(r.sampler, { scheduler: "ddim", eta: 0, steps: 2, skip: "uniform", num_samples: 4 });
    assert.equal(r.fid!.reference, r.fid!.model);
    assert.deepEqual([r.fid!.extractor, r.fid!.num_samples, r.fid!.num_reference], ["row-means", 4, 40]);
    assert.equal(r.ssim!.mean, 1);
    assert.equal(r.ssim!.mse, 0);
    assert.deepEqual(Object.keys(r.latency!.speedup!), ["batch1", "batch2"]);
    assert.ok(stages.has("sample model") && stages.has("sample reference") && stages.has("dataset features"), [...stages].join());
    model.dispose();
  });

  test("SSIM without a reference is an error", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    assert.throws(() => evaluate({ model, scheduler: loadScheduler(fixture("unet-tiny")), noise: torch.randn([1, 1, 16, 16]), ssim: true }), /give one/);
    model.dispose();
  });
});
