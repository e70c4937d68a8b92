// The study (issue 18): its paired statistics against hand computations, and a tiny study end to
// end (a random 1x32x32 UNet with a 20-step schedule, 2 seeds, 2 criteria and scratch, two
// budgets, a few samples) that writes study.json with the expected structure and numbers that
// agree with its stage files; a second run skips every finished stage, and a removed stage file
// is the one stage redone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { writeJsonAtomic } from "../../src/io/index.js";
import { bootstrapMean } from "../../src/metrics/index.js";
import {
  baseTraining,
  budgetSteps,
  pairedDifference,
  perImageDifference,
  pruneModelFolder,
  readPruningRecord,
  recipe,
  runStudy,
  studyPaths,
  summarize,
  type StageEvent,
  type StudyOptions,
  type StudyResult,
} from "../../src/workflow/index.js";
import { repoRoot, scratchDir } from "../helpers/fixtures.js";
import { tinyUNet32 } from "../helpers/tiny-unet.js";

const scratch = scratchDir("diffprune-study-");
after(() => rmSync(scratch, { recursive: true, force: true }));
process.env.DIFFPRUNE_CACHE = join(scratch, "cache");

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

describe("study statistics", () => {
  test("the paired difference of two seeds: the mean, and an interval from the smaller to the larger difference", () => {
    // Two values a, b: the bootstrap means are a (1/4), (a+b)/2 (1/2), b (1/4), so the 2.5% and
    // 97.5% percentiles are a and b.
    const d = pairedDifference([0.8, 0.5], [0.7, 0.2]);
    close(d.values[0]!, 0.1, "seed 0");
    close(d.values[1]!, 0.3, "seed 1");
    close(d.mean, 0.2, "mean");
    close(d.ci95[0], 0.1, "low");
    close(d.ci95[1], 0.3, "high");
  });

  test("equal differences: a point interval; more seeds: bootstrapMean of the differences", () => {
    const same = pairedDifference([0.9, 0.8, 0.7], [0.8, 0.7, 0.6]);
    close(same.mean, 0.1, "mean");
    close(same.ci95[0], 0.1, "low");
    close(same.ci95[1], 0.1, "high");
    const a = [0.61, 0.58, 0.66, 0.7, 0.52];
    const b = [0.55, 0.6, 0.57, 0.61, 0.5];
    const d = pairedDifference(a, b);
    const hand = a.map((x, i) => x - b[i]!);
    assert.deepEqual(d.values, hand);
    close(d.mean, hand.reduce((s, x) => s + x, 0) / 5, "mean");
    assert.deepEqual(d.ci95, bootstrapMean(hand, { resamples: 10_000, seed: 0 }).ci);
    assert.ok(d.ci95[0] >= Math.min(...hand) && d.ci95[1] <= Math.max(...hand));
  });

  test("per-image differences within a seed, and unpaired lists refused", () => {
    const r = perImageDifference([0.5, 0.6, 0.7, 0.8], [0.5, 0.5, 0.5, 0.5]);
    assert.equal(r.n, 4);
    close(r.mean, 0.15, "mean");
    assert.ok(r.ci95[0] >= 0 && r.ci95[1] <= 0.3);
    assert.throws(() => pairedDifference([1, 2], [1]), /2 values against 1/);
    assert.deepEqual(summarize([2]).ci95, [2, 2]);
  });

  test("the fine-tuning recipe is ddpm_train.py's", () => {
    const r = recipe({ batchSize: 16, lr: 2e-4 }, 3, 100);
    assert.deepEqual([r.adamBetas, r.weightDecay, r.lr, r.lrSchedule, r.warmupSteps, r.emaMaxDecay, r.gradClip, r.seed], [[0.9, 0.999], 0, 2e-4, "constant", 0, 0.9999, 1, 3]);
  });
});

/** The tiny UNet (4 norm groups, so that ratios 0.3 and 0.5 differ) with a run log of 4 steps. */
function tinyModel(): string {
  const dir = tinyUNet32(join(scratch, "tiny"), { normGroups: 4 });
  writeFileSync(join(dir, "log.jsonl"), [2, 4].map((step) => JSON.stringify({ step, loss: 0.1, lr: 1e-4, grad_norm: 1, time: "" }) + "\n").join(""));
  return dir;
}

describe("runStudy on a tiny model", () => {
  const model = tinyModel();
  const options: StudyOptions = {
    model,
    data: "fashion-mnist:test",
    heldoutData: "fashion-mnist:test",
    out: join(scratch, "study"),
    seeds: [0, 1],
    methods: ["diff-pruning", "taylor", "magnitude"],
    scratch: true,
    ratio: 0.3,
    thr: 0.05,
    calibBatch: 2,
    thrSweep: [0, 0.05],
    ratioSweep: [0.3, 0.5],
    budgets: [1, 0.5],
    baseSteps: baseTraining(model).steps!,
    batchSize: 2,
    lr: 2e-4,
    numSamples: 4,
    consistencySamples: 3,
    samplingSteps: 2,
    skip: "uniform",
    heldoutBatch: 4,
    bands: 2,
    kidSubsets: 5,
    kidSubsetSize: 1000,
    noiseSeed: 0,
  };
  const paths = studyPaths(options.out);
  let result: StudyResult;
  const stamps = () => [paths.prefinetune(1, "magnitude"), join(paths.budget(0, "scratch", 1), "metrics.json"), paths.thrPoint(0, 0), paths.floor].map((f) => statSync(f).mtimeMs);
  let firstStamps: number[];

  test("the base run's steps come from its log; budgets are fractions of them", () => {
    assert.deepEqual(baseTraining(model), { steps: 4, batchSize: null });
    assert.equal(budgetSteps(options, 0.5), 2);
  });

  test("a study writes study.json with per-seed values, means, intervals, paired differences and sweeps", () => {
    const events: StageEvent[] = [];
    const live = torch.memory().numTensors;
    result = runStudy(options, { onStage: (e) => events.push(e) });
    assert.equal(torch.memory().numTensors - live, 0, "tensors left by the study");
    assert.ok(events.length > 20 && events.every((e) => !e.skipped), "every stage ran");
    assert.ok(events.slice(2).every((e) => e.etaSeconds !== null && e.etaSeconds >= 0), "an ETA once a stage of work is timed");
    const saved = JSON.parse(readFileSync(paths.study, "utf8")) as StudyResult;
    assert.deepEqual(saved, JSON.parse(JSON.stringify(result)));
    assert.deepEqual(result.budgets, [{ budget: 0.5, steps: 2 }, { budget: 1, steps: 4 }]);
    assert.deepEqual(result.bands, [[0, 10], [10, 20]]);
    assert.ok(result.pretrained && result.pretrained.fid !== null && result.pretrained.band_losses.length === 2);
    assert.ok(result.floor && result.floor.fid !== null && result.floor.kid !== null && result.floor.num_samples === 4);

    // per seed: every method, before fine-tuning (not scratch) and at each budget
    assert.deepEqual(result.seeds.map((s) => s.seed), [0, 1]);
    for (const s of result.seeds) {
      assert.deepEqual(Object.keys(s.methods), ["diff-pruning", "taylor", "magnitude", "scratch"]);
      assert.equal(s.methods.scratch!.prefinetune, null);
      for (const m of ["diff-pruning", "magnitude"]) {
        const p = s.methods[m]!.prefinetune!;
        assert.ok(p.ssim > -1 && p.ssim <= 1 && p.band_losses.length === 2 && p.macs < result.pretrained!.macs);
      }
      for (const m of ["diff-pruning", "magnitude", "scratch"])
        for (const b of ["0.5", "1"]) {
          const f = s.methods[m]!.finetuned[b]!;
          assert.ok(f.fid !== null && f.kid !== null && Number.isFinite(f.ssim), `${m} ${b}`);
          assert.equal(f.steps, b === "1" ? 4 : 2);
        }
      assert.equal(typeof s.methods["diff-pruning"]!.prefinetune!.t_prime, "number");
      assert.equal(s.methods.magnitude!.prefinetune!.t_prime, null);
    }

    // means over seeds, and paired differences equal to the per-seed values' differences
    const perSeed = (m: string) => result.seeds.map((s) => s.methods[m]!.prefinetune!.ssim);
    assert.deepEqual(result.prefinetune.magnitude!.ssim.values, perSeed("magnitude"));
    assert.deepEqual(result.prefinetune.magnitude!.ssim.seeds, [0, 1]);
    const d = result.paired!.prefinetune.magnitude!;
    assert.deepEqual(d.ssim.values, perSeed("diff-pruning").map((v, i) => v - perSeed("magnitude")[i]!));
    assert.deepEqual(d.ssim_per_image.map((x) => [x.seed, x.n]), [[0, 3], [1, 3]]);
    const meanLoss = (m: string) => result.seeds.map((s) => s.methods[m]!.prefinetune!.band_losses.reduce((a, b) => a + b, 0) / 2);
    d.loss!.values.forEach((v, i) => close(v, meanLoss("diff-pruning")[i]! - meanLoss("magnitude")[i]!, `held-out loss difference, seed ${i}`));
    assert.equal(d.band_losses.length, 2);
    const dp = JSON.parse(readFileSync(paths.prefinetune(0, "diff-pruning"), "utf8")) as { ssim_per_image: number[] };
    const mag = JSON.parse(readFileSync(paths.prefinetune(0, "magnitude"), "utf8")) as { ssim_per_image: number[] };
    close(d.ssim_per_image[0]!.mean, dp.ssim_per_image.reduce((s, v, i) => s + v - mag.ssim_per_image[i]!, 0) / 3, "per-image mean, seed 0");
    for (const b of ["0.5", "1"]) {
      assert.deepEqual(Object.keys(result.paired!.finetuned[b]!), ["taylor", "magnitude", "scratch"]);
      const fid = result.paired!.finetuned[b]!.scratch!.fid!;
      const at = (m: string) => result.seeds.map((s) => s.methods[m]!.finetuned[b]!.fid!);
      assert.deepEqual(fid.values, at("diff-pruning").map((v, i) => v - at("scratch")[i]!));
      assert.ok(result.finetuned[b]!.scratch!.kid !== null);
    }

    // sweeps: the main prune is the sweep's point at the main thr and ratio
    assert.deepEqual(result.sweeps.thr.map((t) => t.thr), [0, 0.05]);
    assert.deepEqual(result.sweeps.thr[0]!.t_prime.values, [19, 19], "thr 0: every timestep");
    assert.deepEqual(result.sweeps.thr[1]!.ssim.values, perSeed("diff-pruning"));
    for (const m of ["diff-pruning", "taylor", "magnitude"]) {
      const [at3, at5] = result.sweeps.ratio[m]!;
      assert.deepEqual([at3!.ratio, at5!.ratio], [0.3, 0.5]);
      assert.ok(at5!.macs.mean < at3!.macs.mean, `${m}: ratio 0.5 leaves fewer MACs`);
    }

    // the gradient criteria pruned with the seed's one loop exactly as a prune that runs its own
    for (const [method, thr] of [["diff-pruning", 0.05], ["taylor", 0.05], ["diff-pruning", 0]] as const) {
      const out = join(scratch, `direct-${method}-${thr}`);
      const direct = pruneModelFolder({ model, method, ratio: 0.3, thr, seed: 1, calibration: paths.calibration(1), out });
      if (thr === 0.05) {
        const viaStudy = readPruningRecord(paths.pruned(1, method))!;
        assert.deepEqual(viaStudy.history, direct.history, `${method}: the same channels removed`);
        assert.deepEqual(viaStudy.gradients, direct.gradients, `${method}: the same loop recorded`);
        assert.deepEqual(viaStudy.calibration, { source: paths.calibration(1), batch: 2 });
      }
      if (method === "diff-pruning") assert.equal(thr === 0 ? result.sweeps.thr[0]!.t_prime.values[1] : result.seeds[1]!.methods[method]!.prefinetune!.t_prime, direct.gradients!.tPrime, `T' at thr ${thr}`);
    }
    assert.ok(!existsSync(join(paths.seed(0), "gradients")), "the snapshots are removed once the seed's prunes are done");

    // the budgets share one fine-tuning run: its log reaches step 4 once
    const log = readFileSync(join(paths.finetune(0, "magnitude"), "log.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(log, [2, 4]);

    const html = readFileSync(paths.report, "utf8");
    for (const id of ["diff-pruning", "prefinetune", "bands", "paired-prefinetune", "finetuned-1", "paired-finetuned-0.5", "paired-fid", "thr-sweep", "ratio-sweep", "samples-prefinetune", "samples-finetuned"])
      assert.match(html, new RegExp(`<section id="${id}">`), id);
    // the paired-difference plot: an estimate (a dot) and an interval (a line) per baseline, and the zero line
    const pairedPlot = html.slice(html.indexOf('<section id="paired-prefinetune">'), html.indexOf("</section>", html.indexOf('<section id="paired-prefinetune">')));
    assert.equal(pairedPlot.match(/<circle /g)?.length, 2);
    assert.match(pairedPlot, />taylor<\/text>[\s\S]*>magnitude<\/text>/);
    assert.match(pairedPlot, /stroke-dasharray="4 3"/);
    firstStamps = stamps();
  });

  test("a second run skips every finished stage; a removed result is the one stage redone", () => {
    const events: StageEvent[] = [];
    const live = torch.memory().numTensors;
    const again = runStudy(options, { onStage: (e) => events.push(e) });
    assert.ok(events.every((e) => e.skipped), "nothing redone");
    assert.equal(torch.memory().numTensors, live, "a run that only summarises frees every tensor");
    assert.deepEqual(stamps(), firstStamps);
    assert.deepEqual(again.paired, result.paired);

    rmSync(paths.ratioPoint(1, "magnitude", 0.5));
    const redone: string[] = [];
    runStudy(options, { onStage: (e) => !e.skipped && redone.push(e.label) });
    assert.deepEqual(redone, ["seed 1: ratio sweep, magnitude at ratio 0.5"]);

    // a gradient criterion's point needs the seed's loop again, whose snapshots were removed
    const before = readFileSync(paths.ratioPoint(1, "taylor", 0.5), "utf8");
    rmSync(paths.ratioPoint(1, "taylor", 0.5));
    redone.length = 0;
    runStudy(options, { onStage: (e) => !e.skipped && redone.push(e.label) });
    assert.deepEqual(redone.map((l) => l.replace(/ \(.*/, "").replace(/ over .*/, "")), ["seed 1: gradients of the denoising loss", "seed 1: ratio sweep, taylor at ratio 0.5", "seed 1: remove the gradient snapshots"]);
    assert.equal(readFileSync(paths.ratioPoint(1, "taylor", 0.5), "utf8"), before, "the same point again");
  });

  test("other measuring options in the same folder are refused; fewer seeds and sweeps are a summary of those", () => {
    assert.throws(() => runStudy({ ...options, ratio: 0.4, seeds: [0] }), /holds a study with other options \(ratio\); .*only seeds, methods/);
    const events: StageEvent[] = [];
    const fewer = runStudy({ ...options, seeds: [0], thrSweep: [], budgets: [0.5] }, { onStage: (e) => events.push(e) });
    assert.ok(events.every((e) => e.skipped));
    assert.deepEqual(fewer.seeds.map((s) => s.seed), [0]);
    assert.deepEqual(Object.keys(fewer.finetuned), ["0.5"]);
    assert.deepEqual(fewer.sweeps.thr, []);
    assert.deepEqual(fewer.prefinetune.taylor!.ssim.values, [result.prefinetune.taylor!.ssim.values[0]]);
  });
});

describe("diffprune study (command line)", () => {
  test("a model without a run log needs --base-steps, and nothing is written", () => {
    const bare = join(scratch, "bare");
    mkdirSync(bare);
    writeJsonAtomic(join(bare, "config.json"), {});
    const out = join(scratch, "cli-out");
    const r = spawnSync(process.execPath, [join(repoRoot(), "dist", "src", "cli", "main.js"), "study", "--model", bare, "--out", out], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--model .*bare has no run log .* give --base-steps/);
    assert.ok(!existsSync(out));
  });
});
