// Latency: the median of timed runs after warm-up, per batch size.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UNet2DModel } from "../../src/models/index.js";
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

  test("median of odd and even counts", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});
