// Whole-head pruning of multi-head attention: a head zeroed by hand is the one removed, the output
// does not change, the attention module's head count follows, and the count survives a save and
// reload (config.json cannot be read from the weights alone).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Attention } from "../../src/nn/index.js";
import { PRUNED_HEADS_KEY, UNet2DModel } from "../../src/models/index.js";
import { DependencyGraph, prune, unetForward } from "../../src/pruning/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { keptIndices, zeroAt } from "./nets.js";

const ATTENTION = "down_blocks.1.attentions.0";

describe("whole-head pruning", () => {
  test("removes the zeroed head: same output, 3 heads of 16, reloads with 3 heads", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const attention = new Map(model.namedModules()).get(ATTENTION) as Attention;
    assert.equal(attention.heads, 4, "unet-tiny: 64 channels, attention_head_dim 16");
    const head = [32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47]; // head 2
    for (const p of ["to_q", "to_k", "to_v"]) {
      zeroAt(model, `${ATTENTION}.${p}.weight`, 0, head);
      zeroAt(model, `${ATTENTION}.${p}.bias`, 0, head);
    }
    zeroAt(model, `${ATTENTION}.to_out.0.weight`, 1, head);
    const qBefore = torch.keep(model.stateDict().get(`${ATTENTION}.to_q.weight`)!.clone());
    torch.manualSeed(3);
    const x = torch.keep(torch.randn([2, 1, 16, 16]));
    const run = (m: UNet2DModel) => torch.noGrad(() => m.forward(x, 7));
    const before = run(model);

    // Only this attention's group may change: every other layer is ignored.
    const graph = DependencyGraph.build(model, unetForward(model));
    const others = graph.layers.map((l) => l.name).filter((n) => !n.startsWith(`${ATTENTION}.`));
    prune(model, { criterion: "magnitude", ratio: 0.25, forward: unetForward(model), pruneHeads: true, ignoredLayers: others });

    assert.equal(attention.heads, 3);
    assert.equal(attention.scale, 0.25, "the softmax scale stays 1/sqrt(16)");
    const q = model.stateDict().get(`${ATTENTION}.to_q.weight`)!;
    assert.deepEqual(q.shape, [48, 64]);
    const kept = torch.tensor(keptIndices(64, head), { dtype: "int64" });
    assert.ok(torch.equal(q, qBefore.indexSelect(0, kept)), "heads 0, 1 and 3 kept, in order");
    assert.ok(maxAbsDiff(run(model), before) <= 1e-5);

    const dir = scratchDir("head-pruned");
    model.savePretrained(dir);
    const back = UNet2DModel.fromPretrained(dir);
    assert.deepEqual(back.config[PRUNED_HEADS_KEY as keyof typeof back.config], { [ATTENTION]: 3 });
    assert.equal((new Map(back.namedModules()).get(ATTENTION) as Attention).heads, 3);
    assert.ok(torch.equal(run(back), run(model)), "identical outputs after the round trip");
    torch.dispose([x, qBefore, kept]);
    model.dispose();
    back.dispose();
  });

  test("without the option, every head keeps its count and loses the same number of channels", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    prune(model, { criterion: "magnitude", ratio: 0.25, forward: unetForward(model) });
    const attention = new Map(model.namedModules()).get(ATTENTION) as Attention;
    assert.equal(attention.heads, 4);
    assert.deepEqual(model.stateDict().get(`${ATTENTION}.to_q.weight`)!.shape, [48, 48]);
    model.dispose();
  });
});
