// Removing channels whose weights are all zero must not change what the model computes: zero by
// hand every tensor a group holds at some channels (producers' output rows and biases, consumers'
// input columns), remove exactly those channels, and compare the outputs. Done for groups no
// GroupNorm normalises (a norm's statistics would see the missing zeros): the time-embedding MLP
// and an attention's q/k/v of a UNet, and the residual and concatenated groups of a plain conv net.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import type { Attention, Module } from "../../src/nn/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DependencyGraph, Importance, prune, pruningGroups, removeChannels, unetForward } from "../../src/pruning/index.js";
import { fixture } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { mulberry32 } from "../helpers/random.js";
import { keptIndices, narrowed, SkipNet, snapshot, zeroAt } from "./nets.js";

/** A tensor of the group, listed by hand: channel j of the root sits at index offset + j along dim. */
interface Member {
  tensor: string;
  dim: number;
  offset?: number;
}

interface Case {
  model: Module;
  /** The forward traced to build the graph. */
  trace: () => Tensor;
  /** The forward whose output must not change. */
  run: () => Tensor;
  root: string;
  members: Member[];
  /** Root channels zeroed and removed. */
  remove: number[];
}

const sortedKeys = (ms: { tensor: string; dim: number }[]): string[] => ms.map((m) => `${m.tensor}:${m.dim}`).sort();

/** Zeroes the members at `remove`; returns the zeroed model's output and a copy of its tensors. */
function zeroMembers(c: Case): { before: Tensor; weights: Map<string, Tensor> } {
  for (const m of c.members) zeroAt(c.model, m.tensor, m.dim, c.remove.map((j) => j + (m.offset ?? 0)));
  return { before: torch.noGrad(() => torch.keep(c.run())), weights: snapshot(c.model) };
}

/**
 * Zeroes the case's channels, removes them with removeChannels and checks: the output did not
 * change, the members shrank by exactly those indices (values kept), every other tensor is
 * untouched, and magnitude scores the zeroed channels lowest (zero, all others positive).
 */
function zeroAndRemove(c: Case): { weights: Map<string, Tensor>; scores: Float64Array } {
  const { before, weights } = zeroMembers(c);
  const graph = DependencyGraph.build(c.model, c.trace);
  const group = [...pruningGroups(graph)].find((g) => g.root.name === c.root);
  assert.ok(group, `a group rooted at ${c.root}`);
  assert.equal(group.blocked, null);
  assert.deepEqual(sortedKeys(group.members.map((m) => m.slot)), sortedKeys(c.members), "the group holds exactly the hand-listed tensors");

  const scores = new Importance("magnitude", graph).of(group);
  for (let j = 0; j < scores.length; j++) {
    if (c.remove.includes(j)) assert.ok(Math.abs(scores[j]!) < 1e-12, `zeroed channel ${j} scores ${scores[j]}`);
    else assert.ok(scores[j]! > 1e-6, `channel ${j} scores ${scores[j]}`);
  }

  removeChannels(graph, [{ group, remove: c.remove }]);
  const after = torch.noGrad(() => c.run());
  assert.deepEqual(after.shape, before.shape);
  const err = maxAbsDiff(after, before);
  assert.ok(err <= 1e-5, `output changed by ${err} after removing zeroed channels`);

  const now = c.model.stateDict();
  const shrunk = new Map<string, Member[]>();
  for (const m of c.members) shrunk.set(m.tensor, [...(shrunk.get(m.tensor) ?? []), m]);
  for (const [name, old] of weights) {
    const t = now.get(name)!;
    let expected = old;
    for (const m of shrunk.get(name) ?? []) expected = narrowed(expected, m.dim, keptIndices(old.shape[m.dim]!, c.remove.map((j) => j + (m.offset ?? 0))));
    assert.deepEqual(t.shape, expected.shape, `${name} has shape [${t.shape.join(", ")}]`);
    assert.ok(torch.equal(t, expected), `${name} keeps the values of its kept channels`);
  }
  for (const m of c.members) assert.equal(now.get(m.tensor)!.shape[m.dim], weights.get(m.tensor)!.shape[m.dim]! - c.remove.length, `${m.tensor} shrank`);
  return { weights, scores };
}

/** A second copy of the zeroed model, pruned by `prune` with magnitude, other groups ignored, must end equal. */
function pruneMatches(fresh: Module, trace: () => Tensor, root: string, ratio: number, expected: Map<string, Tensor>): void {
  const graph = DependencyGraph.build(fresh, trace);
  const group = [...pruningGroups(graph)].find((g) => g.root.name === root)!;
  const others = graph.layers.map((l) => l.name).filter((n) => !group.layers.some((l) => l.name === n));
  prune(fresh, { criterion: "magnitude", ratio, forward: trace, ignoredLayers: others });
  const sd = fresh.stateDict();
  assert.deepEqual([...sd.keys()], [...expected.keys()]);
  for (const [name, t] of expected) assert.ok(torch.equal(sd.get(name)!, t), `${name}: prune with magnitude removes the zeroed channels`);
}

/** `count` distinct indices below `n`, drawn with a seeded generator, ascending. */
function pick(n: number, count: number, seed: number): number[] {
  const rand = mulberry32(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(rand() * n));
  return [...chosen].sort((a, b) => a - b);
}

describe("removing zeroed channels leaves the output unchanged", () => {
  torch.manualSeed(0);
  const sample = torch.keep(torch.randn([2, 1, 16, 16]));
  const timesteps = torch.keep(torch.tensor([3, 517], { dtype: "int64" }));
  const unetCase = (model: UNet2DModel, root: string, members: Member[], remove: number[]): Case => ({
    model,
    trace: unetForward(model),
    run: () => model.forward(sample, timesteps),
    root,
    members,
    remove,
  });

  test("a UNet's time-embedding MLP (linear_1 -> SiLU -> linear_2)", () => {
    const members: Member[] = [
      { tensor: "time_embedding.linear_1.weight", dim: 0 },
      { tensor: "time_embedding.linear_1.bias", dim: 0 },
      { tensor: "time_embedding.linear_2.weight", dim: 1 },
    ];
    const remove = pick(128, 32, 1);
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const { weights } = zeroAndRemove(unetCase(model, "time_embedding.linear_1", members, remove));
    assert.deepEqual(model.timeEmbedding.linear1.weight.shape, [96, 32]);
    assert.deepEqual(model.timeEmbedding.linear2.weight.shape, [128, 96]);

    // 128 - floor(128 * 0.75) = 32 channels go: prune picks the zeroed ones
    const fresh = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    zeroMembers(unetCase(fresh, "time_embedding.linear_1", members, remove));
    pruneMatches(fresh, unetForward(fresh), "time_embedding.linear_1", 0.25, model.stateDict());
    for (const t of weights.values()) t.dispose();
  });

  test("an attention's q/k/v (2 channels of each of 4 heads); the softmax scale stays 1/sqrt(16)", () => {
    const a = "down_blocks.1.attentions.0";
    const members: Member[] = [
      ...["to_q", "to_k", "to_v"].flatMap((p) => [
        { tensor: `${a}.${p}.weight`, dim: 0 },
        { tensor: `${a}.${p}.bias`, dim: 0 },
      ]),
      { tensor: `${a}.to_out.0.weight`, dim: 1 },
    ];
    const remove = [3, 9, 16, 30, 40, 41, 50, 63];
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    const attention = new Map(model.namedModules()).get(a) as Attention;
    assert.equal(attention.heads, 4);
    assert.equal(attention.scale, 0.25);
    const { scores } = zeroAndRemove(unetCase(model, `${a}.to_v`, members, remove));
    assert.equal(scores.length, 64);
    assert.equal(attention.heads, 4);
    assert.equal(attention.scale, 0.25, "the scale of the original head dim");
    assert.deepEqual(attention.toQ.weight.shape, [56, 64]);
    assert.deepEqual(attention.toOut.at(0).weight.shape, [64, 56]);

    // 64 - floor(64 * 0.875) = 8, two in each head: prune picks the zeroed ones
    const fresh = UNet2DModel.fromPretrained(fixture("unet-tiny"));
    zeroMembers(unetCase(fresh, `${a}.to_v`, members, remove));
    pruneMatches(fresh, unetForward(fresh), `${a}.to_v`, 0.125, model.stateDict());
  });

  describe("a conv net with a residual add and a skip concat", () => {
    const x = torch.keep(torch.randn([2, 3, 6, 6]));
    const netCase = (model: SkipNet, root: string, members: Member[], remove: number[]): Case => ({
      model,
      trace: () => model.forward(x.narrow(0, 0, 1)),
      run: () => model.forward(x),
      root,
      members,
      remove,
    });
    const twin = (model: SkipNet): SkipNet => {
      const copy = new SkipNet();
      copy.loadStateDict(model.stateDict());
      return copy;
    };

    test("the residual group: conv1 and conv2 outputs, conv2/conv3 inputs, conv4's first 8 inputs", () => {
      const members: Member[] = [
        { tensor: "conv1.weight", dim: 0 },
        { tensor: "conv1.bias", dim: 0 },
        { tensor: "conv2.weight", dim: 0 },
        { tensor: "conv2.bias", dim: 0 },
        { tensor: "conv2.weight", dim: 1 },
        { tensor: "conv3.weight", dim: 1 },
        { tensor: "conv4.weight", dim: 1 },
      ];
      const remove = [1, 4, 6];
      const model = new SkipNet();
      const fresh = twin(model);
      zeroAndRemove(netCase(model, "conv1", members, remove));
      assert.deepEqual(model.conv4.weight.shape, [10, 11, 1, 1]);
      assert.deepEqual(model.conv2.weight.shape, [5, 5, 3, 3]);
      zeroMembers(netCase(fresh, "conv1", members, remove));
      pruneMatches(fresh, () => fresh.forward(x.narrow(0, 0, 1)), "conv1", 0.375, model.stateDict());
    });

    test("the concatenated group: conv3's outputs are conv4's inputs 8..13", () => {
      const members: Member[] = [
        { tensor: "conv3.weight", dim: 0 },
        { tensor: "conv3.bias", dim: 0 },
        { tensor: "conv4.weight", dim: 1, offset: 8 },
      ];
      const remove = [0, 5];
      const model = new SkipNet();
      const fresh = twin(model);
      zeroAndRemove(netCase(model, "conv3", members, remove));
      assert.deepEqual(model.conv3.weight.shape, [4, 8, 3, 3]);
      assert.deepEqual(model.conv4.weight.shape, [10, 12, 1, 1]);
      // 6 - floor(6 * 0.7) = 2 channels go
      zeroMembers(netCase(fresh, "conv3", members, remove));
      pruneMatches(fresh, () => fresh.forward(x.narrow(0, 0, 1)), "conv3", 0.3, model.stateDict());
    });

    test("both groups at once, with conv4's own group: removing from one leaves the others' indices right", () => {
      const model = new SkipNet();
      const residual: Member[] = [
        { tensor: "conv1.weight", dim: 0 },
        { tensor: "conv1.bias", dim: 0 },
        { tensor: "conv2.weight", dim: 0 },
        { tensor: "conv2.bias", dim: 0 },
        { tensor: "conv2.weight", dim: 1 },
        { tensor: "conv3.weight", dim: 1 },
        { tensor: "conv4.weight", dim: 1 },
      ];
      const concat: Member[] = [
        { tensor: "conv3.weight", dim: 0 },
        { tensor: "conv3.bias", dim: 0 },
        { tensor: "conv4.weight", dim: 1, offset: 8 },
      ];
      const last: Member[] = [
        { tensor: "conv4.weight", dim: 0 },
        { tensor: "conv4.bias", dim: 0 },
        { tensor: "head.weight", dim: 1 },
      ];
      const plan = [
        { root: "conv1", members: residual, remove: [0, 7] },
        { root: "conv3", members: concat, remove: [2] },
        { root: "conv4", members: last, remove: [3, 4, 9] },
      ];
      for (const p of plan) zeroMembers(netCase(model, p.root, p.members, p.remove));
      const before = torch.noGrad(() => model.forward(x));
      const graph = DependencyGraph.build(model, () => model.forward(x.narrow(0, 0, 1)));
      const groups = [...pruningGroups(graph)];
      removeChannels(
        graph,
        plan.map((p) => ({ group: groups.find((g) => g.root.name === p.root)!, remove: p.remove })),
      );
      const err = maxAbsDiff(torch.noGrad(() => model.forward(x)), before);
      assert.ok(err <= 1e-5, `output changed by ${err}`);
      assert.deepEqual(model.conv4.weight.shape, [7, 6 + 5, 1, 1]);
      assert.deepEqual(model.head.weight.shape, [2, 7, 3, 3]);
    });
  });
});
