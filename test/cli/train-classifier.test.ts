// `diffprune train-classifier` on a small subset: it writes loadable weights and its accuracy.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { ClassifierExtractor } from "../../src/metrics/index.js";
import { repoRoot, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-clf-");
after(() => rmSync(scratch, { recursive: true, force: true }));

test("train-classifier writes model.safetensors and classifier.json with the test accuracy", () => {
  const out = join(scratch, "clf");
  const main = join(repoRoot(), "dist", "src", "cli", "main.js");
  const r = spawnSync(process.execPath, [main, "train-classifier", "--out", out, "--limit", "1280", "--epochs", "2", "--test-limit", "200"], {
    encoding: "utf8",
    env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(readFileSync(join(out, "classifier.json"), "utf8")) as { test_accuracy: number; test_images: number; train_images: number; parameters: number };
  assert.deepEqual([info.test_images, info.train_images, info.parameters], [200, 1280, 356_458]);
  assert.ok(info.test_accuracy > 0.3, `20 steps (enough for BatchNorm's running statistics) beat chance (10%): ${info.test_accuracy}`);
  assert.match(r.stdout, new RegExp(`test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`));
  const extractor = ClassifierExtractor.load(out);
  assert.equal(extractor.featureDim, 128);
  extractor.model.dispose();
});
