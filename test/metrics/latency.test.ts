// Latency: the median of timed runs after warm-up, per batch size.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readFileSync } from "node:fs";
import * as torch from "../../src/torch/index.js";
import { UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { measureLatency, median } from "../../src/metrics/index.js";
import { fixture } from "../helpers/fixtures.js";

describe("measureLatency", () => {
  test("times each batch size: repeats runs, their median, and leaves the model's mode alone", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    model.train();
    const result = measureLatency(model, { batchSizes: [1, 4], warmup: 1, repeats: 3 });
    assert.deepEqual(result.map((r) => r.batchSize), [1, 4]);
    for (const r of result) {
      assert.equal(r.runsMs.length, 3);
      assert.equal(r.medianMs, median(r.runsMs));
      assert.ok(r.medianMs > 0);
    }
    assert.equal(model.training, true);
    model.dispose();
  });

  test("a class-conditional model is timed with its class embedding (a forward without labels would be refused)", () => {
    const config = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as UNet2DConfig;
    const model = new UNet2DModel({ ...config, num_class_embeds: 3 });
    assert.throws(() => model.forward(torch.zeros([1, config.in_channels, config.sample_size, config.sample_size]), 0), /class/);
    const [r] = measureLatency(model, { batchSizes: [2], warmup: 0, repeats: 1 });
    assert.ok(r!.medianMs > 0);
    model.dispose();
  });

  test("median of odd and even counts", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});
