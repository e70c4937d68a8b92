// The workflow library, called as a program would call it: a pruned folder whose pruning.json
// reads back as the record returned, a fine-tune whose model folder loads, errors that name the
// function's options (the CLI renders the same errors with its flags), and warnings as objects.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { OptionError } from "../../src/io/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { loadPipeline } from "../../src/diffusion/index.js";
import { criterionNamed } from "../../src/pruning/index.js";
import { finetune, pruneModelFolder, readPruningRecord, PRUNING_FILE, snapshotDir } from "../../src/workflow/index.js";
import * as torch from "../../src/torch/index.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { flagOf, cliMessage } from "../../src/cli/args.js";
import { fixture, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-workflow-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const images = tinyImageFolder(join(scratch, "images"));

describe("pruneModelFolder", () => {
  test("writes a loadable folder whose pruning.json reads back as the returned record", () => {
    const out = join(scratch, "dp");
    const record = pruneModelFolder({ model: fixture("unet-tiny"), method: "diff-pruning", ratio: 0.3, data: `folder:${images}`, calibBatch: 2, out });
    assert.deepEqual(readPruningRecord(out), record);
    assert.ok(record.gradients && record.gradients.losses.length === record.gradients.tPrime + 1);
    // On disk the gradient loop keeps its snake_case keys.
    const stored = JSON.parse(readFileSync(join(out, PRUNING_FILE), "utf8")) as { diff_pruning: { t_prime: number } };
    assert.equal(stored.diff_pruning.t_prime, record.gradients.tPrime);
    const { model } = loadPipeline({ model: out });
    assert.equal(model.numParameters(), record.params.after);
    model.dispose();
  });

  test("takes a criterion object as well as its name", () => {
    const out = join(scratch, "mag");
    const record = pruneModelFolder({ model: fixture("unet-tiny"), method: criterionNamed("magnitude"), ratio: 0.3, out });
    assert.equal(record.method, "magnitude");
    assert.equal(record.gradients, null);
  });

  test("errors name the function's options; the CLI renders them as flags", () => {
    const catchIt = (f: () => unknown): OptionError => {
      try {
        f();
      } catch (err) {
        assert.ok(err instanceof OptionError, String(err));
        return err;
      }
      assert.fail("no error");
    };
    const e = catchIt(() => pruneModelFolder({ model: fixture("unet-tiny"), method: "magnitude", ratio: 0.3, roundTo: 1000, out: join(scratch, "x") }));
    assert.match(e.message, /^roundTo 1000 is not below any group's channel count .* use allowUnchanged to write the model as it is$/);
    assert.match(cliMessage(e), /^--round-to 1000 is not below .* use --allow-unchanged to write/);
    const g = catchIt(() => pruneModelFolder({ model: fixture("unet-tiny"), method: "taylor", ratio: 0.3, out: join(scratch, "y") }));
    assert.match(g.message, /method taylor scores channels by gradients .* give data SPEC .* or calibration FILE/);
    const p = catchIt(() => pruneModelFolder({ model: fixture("unet-tiny"), method: "magnitude", ratio: 0.3, out: fixture("unet-tiny") }));
    assert.match(p.message, /^out .*unet-tiny: it is the model folder/);
    assert.match(cliMessage(p), /^--out .*unet-tiny: it is the --model folder/);
  });

  test("warnings come as OptionErrors, rendered by the caller", () => {
    const warnings: OptionError[] = [];
    pruneModelFolder({ model: fixture("unet-tiny"), method: "magnitude", ratio: 0.3, roundTo: 1000, allowUnchanged: true, out: join(scratch, "w"), onWarning: (w) => warnings.push(w) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /^warning: roundTo 1000 .*writing it anyway \(allowUnchanged\)$/);
    assert.match(cliMessage(warnings[0]!), /^warning: --round-to 1000 .*writing it anyway \(--allow-unchanged\)$/);
  });

  test("flagOf maps option names to flags", () => {
    assert.equal(flagOf("roundTo"), "--round-to");
    assert.equal(flagOf("ignoredLayers"), "--ignore");
    assert.equal(flagOf("--out"), "--out");
  });
});

describe("finetune", () => {
  test("trains a model folder into a run folder whose model/ loads, and refuses to restart it without resume", () => {
    const out = join(scratch, "ft");
    const steps: number[] = [];
    const result = finetune({ model: fixture("unet-tiny"), data: `folder:${images}`, out, train: { steps: 2, batchSize: 2, warmupSteps: 0 }, onStep: (info) => steps.push(info.step) });
    assert.deepEqual(steps, [1, 2]);
    assert.equal(result.steps, 2);
    const model = UNet2DModel.fromPretrained(result.modelDir);
    model.dispose();
    assert.throws(() => finetune({ model: fixture("unet-tiny"), data: `folder:${images}`, out, train: { steps: 2, batchSize: 2 } }), /already holds a training run: use resume to continue it/);
  });

  test("snapshotEvery writes the shipped weights as model folders on the way; the last one is model/", () => {
    const out = join(scratch, "snap");
    const result = finetune({ model: fixture("unet-tiny"), data: `folder:${images}`, out, train: { steps: 4, batchSize: 2, warmupSteps: 0, snapshotEvery: 2 } });
    assert.deepEqual(readdirSync(join(out, "snapshots")), ["step-0000002", "step-0000004"]);
    const weights = (dir: string) => UNet2DModel.fromPretrained(dir).stateDict();
    const [at2, at4, last] = [weights(snapshotDir(out, 2)), weights(snapshotDir(out, 4)), weights(result.modelDir)];
    const differ = (a: Map<string, torch.Tensor>, b: Map<string, torch.Tensor>) => [...a].some(([k, t]) => maxAbsDiff(t, b.get(k)!) > 0);
    assert.equal(differ(at4, last), false, "the step-4 snapshot is the model shipped at step 4");
    assert.equal(differ(at2, at4), true, "the step-2 snapshot holds step 2's weights");
  });
});
