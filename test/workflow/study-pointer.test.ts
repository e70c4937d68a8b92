// The demo's pointer to the study: what the study measures, and the shipped study's headline
// (paired SSIM before fine-tuning, FID after the largest budget) when its study.json is there.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { studyHeadline, studyPointer, type StudyResult } from "../../src/workflow/index.js";
import { scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-study-pointer-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const summary = (mean: number, lo: number, hi: number, seeds = [0, 1, 2, 3, 4]) => ({ values: [], mean, ci95: [lo, hi] as [number, number], seeds });

/** The fields of study.json the headline reads; the rest do not matter to it. */
const study = {
  sampler: { scheduler: "ddim", eta: 0, steps: 100, skip: "uniform", num_samples: 2000, consistency_samples: 256 },
  budgets: [
    { budget: 0.1, steps: 1000 },
    { budget: 0.2, steps: 2000 },
  ],
  floor: { fid: 3.06, kid: 0, kid_std: 0 },
  finetuned: {
    "0.1": { "diff-pruning": { ssim: summary(0.8, 0.7, 0.9), fid: summary(99, 98, 100), kid: null } },
    "0.2": {
      "diff-pruning": { ssim: summary(0.8, 0.7, 0.9), fid: summary(20.04, 18.5, 21.25), kid: null },
      magnitude: { ssim: summary(0.8, 0.7, 0.9), fid: summary(25, 24, 26, [0, 1, 2]), kid: null },
      random: { ssim: summary(0.8, 0.7, 0.9), fid: null, kid: null },
    },
  },
  paired: {
    reference: "diff-pruning",
    prefinetune: { magnitude: { ssim: summary(0.0123, -0.002, 0.0251) }, random: { ssim: summary(-0.05, -0.07, -0.03) } },
    finetuned: {},
  },
} as unknown as StudyResult;

describe("the demo's pointer to the study", () => {
  test("the headline: paired SSIM right after pruning, and FID after the largest budget beside the floor", () => {
    assert.deepEqual(studyHeadline(study), [
      "SSIM right after pruning, diff-pruning minus each, 95% CI: magnitude +0.012 [-0.002, +0.025] (5 seeds); random -0.050 [-0.070, -0.030] (5 seeds).",
      "FID after 2000 fine-tuning steps (2000 samples), mean over seeds, 95% CI: diff-pruning 20.0 [18.5, 21.3] (5 seeds); magnitude 25.0 [24.0, 26.0] (3 seeds); real vs real 3.1.",
    ]);
    assert.deepEqual(studyHeadline({ ...study, paired: null, budgets: [] }), [], "a study before fine-tuning without Diff-Pruning has no headline");
  });

  test("says what the study measures; quotes the shipped study only when it is there", () => {
    const none = studyPointer(join(scratch, "missing.json"));
    assert.equal(none.length, 1);
    assert.match(none[0]!, /one seed[\s\S]*5 seeds[\s\S]*2,000 samples beside the real-vs-real floor/);
    const file = join(scratch, "study.json");
    writeFileSync(file, JSON.stringify(study));
    const lines = studyPointer(file);
    assert.equal(lines.length, 2);
    assert.ok(lines[1]!.startsWith("The shipped study found: SSIM right after pruning"), lines[1]);
  });
});
