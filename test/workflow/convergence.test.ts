// The convergence curve: the last-quarter rule on hand-made points, and a tiny run end to end
// (snapshots scored against real images with the floor beside them, scores kept, a second call
// scoring only new snapshots, other settings refused).
import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { convergence, convergencePaths, finetune, lastQuarter, snapshotDir, type ConvergenceOptions } from "../../src/workflow/index.js";
import { scratchDir } from "../helpers/fixtures.js";
import { tinyUNet32 } from "../helpers/tiny-unet.js";

const scratch = scratchDir("diffprune-convergence-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const at = (step: number, fid: number | null) => ({ step, fid, kid: null, kid_std: null });

describe("lastQuarter", () => {
  test("FID at the snapshot at or below 3/4 of the last step against the last one", () => {
    const q = lastQuarter([at(1000, 100), at(2000, 50), at(3000, 40), at(4000, 39)]);
    assert.deepEqual(q, { fromStep: 3000, toStep: 4000, fidFrom: 40, fidTo: 39, improvement: 0.025 });
    assert.equal(lastQuarter([at(2900, 40), at(3500, 39)]), null, "no snapshot in the first three quarters");
    assert.equal(lastQuarter([at(4000, 39)]), null);
    assert.equal(lastQuarter([at(1000, null), at(3000, 50), at(4000, 45)])!.fromStep, 3000);
  });
});

describe("convergence", () => {
  test("scores every snapshot beside the floor, keeps the scores, and refuses other settings", () => {
    const run = join(scratch, "run");
    finetune({ model: tinyUNet32(join(scratch, "tiny")), data: "fashion-mnist:test", out: run, train: { steps: 4, batchSize: 4, warmupSteps: 0, snapshotEvery: 1 } });
    const o: ConvergenceOptions = { run, data: "fashion-mnist:test", numSamples: 8, noiseSeed: 0, kidSubsets: 4, kidSubsetSize: 4, steps: 2, skip: "uniform", batchSize: 8 };
    const scored: number[] = [];
    const r = convergence(o, { onSnapshot: (step, _i, _n, cached) => void (cached || scored.push(step)) });
    assert.deepEqual(scored, [1, 2, 3, 4]);
    assert.deepEqual(r.points.map((p) => p.step), [1, 2, 3, 4]);
    assert.ok(r.points.every((p) => p.fid! > 0 && Number.isFinite(p.kid!)), JSON.stringify(r.points));
    assert.ok(r.floor.fid! > 0 && r.floor.fid! < r.points[0]!.fid!, "real images score better than a random-weight model's");
    assert.equal(r.lastQuarter!.fromStep, 3);
    assert.equal(r.converged, r.lastQuarter!.improvement < 0.05);
    const paths = convergencePaths(run);
    assert.deepEqual(JSON.parse(readFileSync(paths.result, "utf8")), JSON.parse(JSON.stringify(r)));
    assert.match(readFileSync(paths.chart, "utf8"), /<svg[\s\S]*real vs real/);
    // again: nothing is scored anew, and the same numbers come back
    const mtime = statSync(paths.point(2)).mtimeMs;
    const again: number[] = [];
    assert.deepEqual(convergence(o, { onSnapshot: (step, _i, _n, cached) => void (cached || again.push(step)) }), r);
    assert.deepEqual(again, []);
    assert.equal(statSync(paths.point(2)).mtimeMs, mtime);
    // a removed score is made again, the same
    rmSync(paths.point(3));
    assert.deepEqual(convergence(o).points[2], r.points[2]);
    assert.throws(() => convergence({ ...o, steps: 3 }), /other settings \(steps\)/);
    // every 2 steps: snapshots 2 and 4 only (4 is also the last), the same scores as before
    assert.deepEqual(convergence({ ...o, every: 2 }).points, [r.points[1], r.points[3]]);
    assert.deepEqual(convergence({ ...o, every: 3 }).points.map((p) => p.step), [3, 4], "the last snapshot always");
    assert.throws(() => convergence({ ...o, run: join(scratch, "tiny") }), /no snapshots/);
    assert.ok(snapshotDir(run, 4).endsWith("step-0000004"));
  });
});
