// A class-conditional UNet's class table [num_class_embeds, time_embed_dim] is added to the time
// embedding, so its columns join the time embedding's group (linear_2's outputs, every
// time_emb_proj's inputs). Zeroing that group at some channels and removing them must leave the
// output unchanged, as test/pruning/zeroed-channels.test.ts checks for other groups.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DependencyGraph, Importance, prune, pruneUNet, pruningGroups, removeChannels, unetForward } from "../../src/pruning/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import { fixture } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { keptIndices, narrowed, snapshot, zeroAt } from "./nets.js";

const config = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as Record<string, unknown>;

/** unet-tiny's weights with a 10-class table. */
function conditional(): UNet2DModel {
  const base = UNet2DModel.fromPretrained(fixture("unet-tiny"));
  torch.manualSeed(0);
  const model = torch.noGrad(() => new UNet2DModel({ ...config, num_class_embeds: 10 }));
  model.loadStateDict(new Map([...base.stateDict(), ["class_embedding.weight", model.stateDict().get("class_embedding.weight")!]]));
  base.dispose();
  return model.eval();
}

/** The time embedding's group: linear_2's rows and bias, the class table's columns, every time_emb_proj's columns. */
function members(model: UNet2DModel): { tensor: string; dim: number }[] {
  const projections = [...model.stateDict().keys()].filter((k) => k.endsWith("time_emb_proj.weight"));
  assert.ok(projections.length > 0);
  return [
    { tensor: "time_embedding.linear_2.weight", dim: 0 },
    { tensor: "time_embedding.linear_2.bias", dim: 0 },
    { tensor: "class_embedding.weight", dim: 1 },
    ...projections.map((tensor) => ({ tensor, dim: 1 })),
  ];
}

const key = (m: { tensor: string; dim: number }): string => `${m.tensor}:${m.dim}`;

describe("the class table joins the time embedding's group", () => {
  torch.manualSeed(1);
  const sample = torch.keep(torch.randn([2, 1, 16, 16]));
  const timesteps = torch.keep(torch.tensor([3, 517], { dtype: "int64" }));
  const labels = torch.keep(torch.tensor([4, 9], { dtype: "int64" }));
  const remove = [0, 5, 17, 64, 100, 127];

  test("removing zeroed channels leaves the output unchanged", () => {
    const model = conditional();
    const group = members(model);
    for (const m of group) zeroAt(model, m.tensor, m.dim, remove);
    const before = torch.noGrad(() => torch.keep(model.forward(sample, timesteps, labels)));
    const weights = snapshot(model);

    const graph = DependencyGraph.build(model, unetForward(model));
    const found = [...pruningGroups(graph)].find((g) => g.members.some((m) => m.slot.tensor === "class_embedding.weight"));
    assert.ok(found, "a group holds the class table");
    assert.equal(found.blocked, null);
    assert.deepEqual(found.members.map((m) => key(m.slot)).sort(), group.map(key).sort(), "the group holds exactly the hand-listed tensors");

    const scores = new Importance("magnitude", graph).of(found);
    for (let j = 0; j < scores.length; j++) {
      if (remove.includes(j)) assert.ok(Math.abs(scores[j]!) < 1e-12, `zeroed channel ${j} scores ${scores[j]}`);
      else assert.ok(scores[j]! > 1e-6, `channel ${j} scores ${scores[j]}`);
    }

    removeChannels(graph, [{ group: found, remove }]);
    const err = maxAbsDiff(torch.noGrad(() => model.forward(sample, timesteps, labels)), before);
    assert.ok(err <= 1e-5, `output changed by ${err} after removing zeroed channels`);
    const now = model.stateDict();
    for (const [name, old] of weights) {
      const m = group.find((g) => g.tensor === name);
      const expected = m ? narrowed(old, m.dim, keptIndices(old.shape[m.dim]!, remove)) : old;
      assert.ok(torch.equal(now.get(name)!, expected), `${name} keeps the values of its kept channels`);
    }
    assert.deepEqual(now.get("class_embedding.weight")!.shape, [10, 122]);

    // prune with magnitude, the other groups ignored, picks the same channels
    const fresh = conditional();
    for (const m of group) zeroAt(fresh, m.tensor, m.dim, remove);
    const freshGraph = DependencyGraph.build(fresh, unetForward(fresh));
    const root = [...pruningGroups(freshGraph)].find((g) => g.members.some((m) => m.slot.tensor === "class_embedding.weight"))!;
    const others = freshGraph.layers.map((l) => l.name).filter((n) => !root.layers.some((l) => l.name === n));
    // 128 - floor(128 * (1 - 6/128)) = 6 channels go
    prune(fresh, { criterion: "magnitude", ratio: 6 / 128, forward: unetForward(fresh), ignoredLayers: others });
    for (const [name, t] of model.stateDict()) assert.ok(torch.equal(fresh.stateDict().get(name)!, t), `${name}: prune removes the zeroed channels`);
  });

  test("an identity class embedding keeps the time embedding's width: the caller's vectors still fit", () => {
    const model = torch.noGrad(() => new UNet2DModel({ ...config, class_embed_type: "identity" })).eval();
    const scheduler = new DDPMScheduler();
    const report = pruneUNet(model, { criterion: "magnitude", ratio: 0.3, scheduler });
    assert.ok(report.after.params < report.before.params, "the rest is pruned");
    const width = model.stateDict().get("time_embedding.linear_2.weight")!.shape[0]!;
    assert.equal(width, 128);
    const vectors = torch.randn([2, width]);
    assert.deepEqual(torch.noGrad(() => model.forward(sample, timesteps, vectors)).shape, [2, 1, 16, 16]);
  });
});
