// The pruner on the tiny UNet (GroupNorm 8 groups, 4-head attention), a plain conv net and an MLP:
// what ratio 0 leaves, which channels and how many each criterion removes, checkpoints of pruned
// models, round_to, global ranking, iterative steps, the max ratio and bad options.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Attention, Conv2d, GroupNorm, Module } from "../../src/nn/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import {
  channelsRemoved,
  DependencyGraph,
  groupOf,
  Importance,
  prune,
  removeChannels,
  pruneUNet,
  pruningGroups,
  unetForward,
  type LayerChannels,
  type PruneOptions,
  type PruneResult,
} from "../../src/pruning/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { keptIndices, MLP, narrowed, SkipNet, snapshot } from "./nets.js";

const tiny = (): UNet2DModel => UNet2DModel.fromPretrained(fixture("unet-tiny"));
const byName = (r: PruneResult): Map<string, LayerChannels> => new Map(r.layers.map((l) => [l.name, l]));
/** Which rows of `before` survive in `after` (rows compared by value). */
function keptRows(before: Tensor, after: Tensor): number[] {
  const rows = (t: Tensor) => Array.from({ length: t.shape[0]! }, (_, i) => t.select(0, i).toArray().join());
  const old = rows(before);
  return rows(after).map((r) => old.indexOf(r));
}
const modules = (m: Module): Map<string, Module> => new Map(m.namedModules());

/** Every GroupNorm still splits its channels evenly, and every attention's heads its channels. */
function assertNormsValid(model: Module): void {
  for (const [name, m] of model.namedModules()) {
    if (m instanceof GroupNorm) assert.equal(m.numChannels % m.numGroups, 0, `${name}: ${m.numChannels} channels in ${m.numGroups} groups`);
    if (m instanceof Attention) assert.equal(m.toQ.weight.shape[0]! % m.heads, 0, `${name}: ${m.toQ.weight.shape[0]} channels in ${m.heads} heads`);
  }
}

/** Root layers of the open groups of a fresh tiny UNet, with their channel groups. */
function openGroups(): { root: string; channels: number; channelGroups: number }[] {
  const model = tiny();
  const groups = [...pruningGroups(DependencyGraph.build(model, unetForward(model)))];
  model.dispose();
  return groups.filter((g) => g.blocked === null).map((g) => ({ root: g.root.name, channels: g.channels, channelGroups: g.channelGroups }));
}

describe("pruning a UNet2DModel", () => {
  torch.manualSeed(0);
  const sample = torch.keep(torch.randn([2, 1, 16, 16]));
  const timesteps = torch.keep(torch.tensor([5, 700], { dtype: "int64" }));
  const run = (m: UNet2DModel): Tensor => torch.noGrad(() => torch.keep(m.forward(sample, timesteps)));
  const dir = scratchDir("diffprune-pruner-");
  after(() => rmSync(dir, { recursive: true, force: true }));
  const groups = openGroups();

  // One magnitude prune at 0.3, shared by the tests that read it.
  let magnitude: { model: UNet2DModel; result: PruneResult; weights: Map<string, Tensor>; scores: Map<string, Float64Array> };
  before(() => {
    const model = tiny();
    const weights = snapshot(model);
    const graph = DependencyGraph.build(model, unetForward(model));
    const imp = new Importance("magnitude", graph);
    const scores = new Map([...pruningGroups(graph)].filter((g) => g.blocked === null).map((g) => [g.root.name, imp.of(g)]));
    const result = prune(model, { criterion: "magnitude", ratio: 0.3, forward: unetForward(model) });
    magnitude = { model, result, weights, scores };
  });

  test("ratio 0 leaves every tensor and the output as they were", () => {
    const model = tiny();
    const out = run(model);
    const weights = snapshot(model);
    const result = prune(model, { criterion: "magnitude", ratio: 0, forward: unetForward(model) });
    assert.ok(result.layers.every((l) => l.out[0] === l.out[1] && (l.in === null || l.in[0] === l.in[1])));
    for (const [name, t] of model.stateDict()) assert.ok(torch.equal(t, weights.get(name)!), name);
    assert.ok(torch.equal(run(model), out), "bit-identical output");
  });

  test("magnitude 0.3: n = C - floor(0.7 C) per group, split evenly over GroupNorm groups and heads", () => {
    const { model, result } = magnitude;
    const layers = byName(result);
    for (const g of groups) {
      const n = g.channels - Math.floor(g.channels * 0.7);
      const perBlock = Math.floor(n / g.channelGroups);
      assert.deepEqual(layers.get(g.root)!.out, [g.channels, g.channels - perBlock * g.channelGroups], g.root);
    }
    // 32 channels, 8 groups: 10 -> 1 per group; 64: 20 -> 2 per group; 4 heads of 16: 5 per head; 128 alone: 39
    assert.deepEqual(layers.get("conv_in")!.out, [32, 24]);
    assert.deepEqual(layers.get("down_blocks.1.resnets.0.conv1")!.out, [64, 48]);
    assert.deepEqual(layers.get("mid_block.attentions.0.to_q")!.out, [64, 44]);
    assert.deepEqual(layers.get("time_embedding.linear_1")!.out, [128, 89]);
    assert.deepEqual(layers.get("conv_out")!.out, [1, 1], "the output layer keeps its channels");
    assert.ok(result.kept.some((k) => k.root === "conv_out"));
    assertNormsValid(model);
    const m = modules(model);
    assert.equal((m.get("down_blocks.0.resnets.0.norm1") as GroupNorm).numChannels, 24);
    assert.equal((m.get("up_blocks.0.resnets.0.norm1") as GroupNorm).numChannels, 96, "a concat of two 48-channel tensors");
    const attention = m.get("mid_block.attentions.0") as Attention;
    assert.equal(attention.heads, 4);
    assert.equal(attention.scale, 0.25, "the original head dim's scale");
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("magnitude scores each group on the model as the groups before it left it, and removes its lowest per block", () => {
    const { model, weights, result } = magnitude;
    const sd = model.stateDict();
    const removedOf = (root: string): number[] => {
      const kept = new Set(keptRows(weights.get(`${root}.bias`)!, sd.get(`${root}.bias`)!));
      return Array.from({ length: weights.get(`${root}.bias`)!.shape[0]! }, (_, i) => i).filter((i) => !kept.has(i));
    };
    const order = result.history.map((h) => h.root);
    assert.deepEqual(order, groups.map((g) => g.root), "every open group pruned once, in the groups' order");
    const lowest = (imp: Float64Array, from: number, to: number, k: number): number[] =>
      Array.from({ length: to - from }, (_, i) => from + i)
        .sort((a, b) => imp[a]! - imp[b]!)
        .slice(0, k)
        .sort((a, b) => a - b);
    for (const [k, root] of order.entries()) {
      // A fresh model with the channels of the groups before this one removed in one go.
      const fresh = tiny();
      const graph = DependencyGraph.build(fresh, unetForward(fresh));
      const open = [...pruningGroups(graph)].filter((g) => g.blocked === null);
      removeChannels(graph, open.slice(0, k).map((g) => ({ group: g, remove: removedOf(g.root.name) })));
      const group = groupOf(graph, open[k]!.root);
      const imp = new Importance("magnitude", graph).of(group);
      const removed = removedOf(root);
      assert.deepEqual(removed, result.history[k]!.removed, `${root}: history = what left the weights`);
      const blocks = group.channelGroups;
      const size = group.channels / blocks;
      const perBlock = removed.length / blocks;
      const expected = Array.from({ length: blocks }, (_, b) => lowest(imp, b * size, (b + 1) * size, perBlock)).flat();
      assert.deepEqual(removed, expected, `${root} loses its lowest-scored channels on the partly pruned model`);
      fresh.dispose();
    }
    // Scored up front on the unpruned model instead, at least one group would choose otherwise.
    assert.ok(
      groups.some((g) => {
        const imp = magnitude.scores.get(g.root)!;
        const removed = removedOf(g.root);
        const size = g.channels / g.channelGroups;
        const upFront = Array.from({ length: g.channelGroups }, (_, b) => lowest(imp, b * size, (b + 1) * size, removed.length / g.channelGroups)).flat();
        return upFront.join() !== removed.join();
      }),
    );
  });

  test("channelsRemoved predicts how many channels each group loses, before pruning", () => {
    const model = tiny();
    const open = [...pruningGroups(DependencyGraph.build(model, unetForward(model)))].filter((g) => g.blocked === null);
    const removed = new Map(magnitude.result.history.map((h) => [h.root, h.removed.length]));
    for (const g of open) assert.equal(channelsRemoved(g, 0.3), removed.get(g.root.name) ?? 0, g.root.name);
    assert.ok(open.some((g) => channelsRemoved(g, 0.3, { roundTo: 8 }) !== channelsRemoved(g, 0.3)), "round_to changes some counts");
    model.dispose();
  });

  test("a pruned model saves and loads back with identical outputs", () => {
    const { model } = magnitude;
    const path = join(dir, "magnitude-0.3");
    model.savePretrained(path);
    const back = UNet2DModel.fromPretrained(path);
    assert.equal(back.numParameters(), model.numParameters());
    assert.deepEqual(back.stateDict().get("conv_in.weight")!.shape, [24, 1, 3, 3]);
    assert.ok(torch.equal(run(back), run(model)), "bit-identical output after the round trip");
  });

  test("random 0.3 gives the same widths as magnitude and a working model", () => {
    const model = tiny();
    torch.manualSeed(3);
    const result = prune(model, { criterion: "random", ratio: 0.3, forward: unetForward(model) });
    assert.deepEqual(
      result.layers.map((l) => [l.name, l.out, l.in]),
      magnitude.result.layers.map((l) => [l.name, l.out, l.in]),
    );
    assertNormsValid(model);
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("taylor and diff-pruning 0.3 through pruneUNet, with a calibration batch", () => {
    const scheduler = new DDPMScheduler({ num_train_timesteps: 6 });
    torch.manualSeed(4);
    const calibration = { images: torch.keep(torch.rand([2, 1, 16, 16]).mul(2).sub(1)), noise: torch.keep(torch.randn([2, 1, 16, 16])) };
    for (const criterion of ["taylor", "diff-pruning"] as const) {
      const model = tiny();
      const report = pruneUNet(model, { criterion, ratio: 0.3, scheduler, calibration });
      assert.equal(report.method, criterion);
      assert.ok(report.gradients !== null);
      if (criterion === "taylor") assert.equal(report.gradients.losses.length, 6, "taylor runs every timestep");
      assert.ok(report.after.params < report.before.params && report.after.macs < report.before.macs);
      assert.deepEqual(
        report.layers.map((l) => [l.name, l.out]),
        magnitude.result.layers.map((l) => [l.name, l.out]),
      );
      assert.ok(model.parameters().every((p) => p.grad === null), "gradients are cleared afterwards");
      assertNormsValid(model);
      assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
    }
    assert.throws(() => pruneUNet(tiny(), { criterion: "taylor", ratio: 0.3, scheduler }), /taylor pruning needs a calibration batch/);
  });

  test("two iterative steps reach the widths of one step (magnitude)", () => {
    const model = tiny();
    let prepared = 0;
    const result = prune(model, { criterion: "magnitude", ratio: 0.3, forward: unetForward(model), iterativeSteps: 2, prepare: () => prepared++ });
    assert.deepEqual(
      result.layers.map((l) => [l.name, l.out, l.in]),
      magnitude.result.layers.map((l) => [l.name, l.out, l.in]),
    );
    assert.equal(prepared, 2, "prepare runs before each step's scoring");
    assertNormsValid(model);
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("round_to 8 keeps every pruned width a multiple of 8", () => {
    const model = tiny();
    const result = prune(model, { criterion: "magnitude", ratio: 0.3, forward: unetForward(model), roundTo: 8 });
    const layers = byName(result);
    for (const l of result.layers) if (l.out[1] !== l.out[0]) assert.equal(l.out[1] % 8, 0, `${l.name}: ${l.out[1]}`);
    // 128 - 39 = 89 kept without rounding; rounded up to 96
    assert.deepEqual(layers.get("time_embedding.linear_1")!.out, [128, 96]);
    assert.deepEqual(layers.get("time_embedding.linear_2")!.out, [128, 96]);
    assertNormsValid(model);
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("round_to 5 with GroupNorm blocks: kept widths are multiples of 5 and the norms stay valid", () => {
    const model = tiny();
    const result = prune(model, { criterion: "magnitude", ratio: 0.3, forward: unetForward(model), roundTo: 5 });
    for (const l of result.layers) if (l.out[1] !== l.out[0]) assert.equal(l.out[1] % 5, 0, `${l.name}: ${l.out[1]}`);
    assertNormsValid(model);
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("global ranking: different fractions per group, the requested fraction overall", () => {
    const model = tiny();
    const result = prune(model, { criterion: "magnitude", ratio: 0.3, forward: unetForward(model), global: true });
    const layers = byName(result);
    const fractions = groups.map((g) => 1 - layers.get(g.root)!.out[1] / g.channels);
    assert.ok(Math.max(...fractions) - Math.min(...fractions) > 0.2, `fractions ${fractions.map((f) => f.toFixed(2)).join(", ")}`);
    // As Torch-Pruning 1.3 counts it: channels in units of the groups' channel blocks
    let initial = 0;
    let kept = 0;
    for (const g of groups) {
      initial += g.channels / g.channelGroups;
      kept += layers.get(g.root)!.out[1] / g.channelGroups;
    }
    const removed = 1 - kept / initial;
    assert.ok(Math.abs(removed - 0.3) < 0.02, `removed ${removed} of the channel blocks`);
    assertNormsValid(model);
    assert.deepEqual(run(model).shape, [2, 1, 16, 16]);
  });

  test("max ratio caps what each group loses, local and global", () => {
    const local = tiny();
    const capped = prune(local, { criterion: "magnitude", ratio: 0.5, maxRatio: 0.2, forward: unetForward(local) });
    for (const g of groups) {
      const [b, a] = byName(capped).get(g.root)!.out;
      assert.ok(a >= Math.floor(b * 0.8), `${g.root}: ${b} -> ${a}`);
    }
    assert.deepEqual(byName(capped).get("time_embedding.linear_1")!.out, [128, 102], "as at ratio 0.2: 128 - floor(0.8 * 128)");

    const global = tiny();
    const result = prune(global, { criterion: "magnitude", ratio: 0.5, maxRatio: 0.4, global: true, forward: unetForward(global) });
    for (const g of groups) {
      const [b, a] = byName(result).get(g.root)!.out;
      assert.ok(a >= b * 0.6, `${g.root}: ${b} -> ${a} loses more than 40%`);
    }
    assertNormsValid(global);
    assert.deepEqual(run(global).shape, [2, 1, 16, 16]);
  });
});

describe("pruning models that are not UNets", () => {
  test("a conv net with a residual add and a skip concat", () => {
    torch.manualSeed(5);
    const net = new SkipNet();
    const x = torch.randn([2, 3, 6, 6]);
    const result = prune(net, { criterion: "magnitude", ratio: 0.5, forward: () => net.forward(x.narrow(0, 0, 1)) });
    const layers = byName(result);
    // residual 8 -> 4, conv3 6 -> 3, conv4 10 -> 5; conv4 reads the concat of both: 4 + 3
    assert.deepEqual(layers.get("conv1")!.out, [8, 4]);
    assert.deepEqual(layers.get("conv2")!.out, [8, 4]);
    assert.deepEqual(layers.get("conv2")!.in, [8, 4]);
    assert.deepEqual(layers.get("conv3")!.out, [6, 3]);
    assert.deepEqual(layers.get("conv4")!.in, [14, 7]);
    assert.deepEqual(layers.get("conv4")!.out, [10, 5]);
    assert.deepEqual(layers.get("head")!.in, [10, 5]);
    assert.deepEqual(layers.get("head")!.out, [2, 2]);
    assert.equal(result.groups, 3);
    assert.ok(result.kept.some((k) => k.root === "head" && /output/.test(k.reason)));
    assert.deepEqual(torch.noGrad(() => net.forward(x)).shape, [2, 2, 6, 6]);
  });

  test("an MLP", () => {
    torch.manualSeed(6);
    const mlp = new MLP();
    const x = torch.randn([4, 5]);
    const result = prune(mlp, { criterion: "magnitude", ratio: 0.5, forward: () => mlp.forward(x) });
    // 7 - floor(3.5) = 4 go
    assert.deepEqual(byName(result).get("fc1")!.out, [7, 3]);
    assert.deepEqual(byName(result).get("fc2")!.in, [7, 3]);
    assert.deepEqual(mlp.fc1.bias!.shape, [3]);
    assert.deepEqual(torch.noGrad(() => mlp.forward(x)).shape, [4, 3]);
  });

  test("a depthwise conv follows its input's channels and its groups follow its width", () => {
    class Depthwise extends Module {
      readonly conv1 = this.registerModule("conv1", new Conv2d(3, 8, 3, { padding: 1 }));
      readonly dw = this.registerModule("dw", new Conv2d(8, 8, 3, { padding: 1, groups: 8 }));
      readonly conv2 = this.registerModule("conv2", new Conv2d(8, 2, 1));
      forward(x: Tensor): Tensor {
        return this.conv2.forward(this.dw.forward(this.conv1.forward(x).silu()).silu());
      }
    }
    torch.manualSeed(7);
    const net = new Depthwise();
    const x = torch.randn([1, 3, 5, 5]);
    const result = prune(net, { criterion: "magnitude", ratio: 0.5, forward: () => net.forward(x) });
    assert.deepEqual(byName(result).get("conv1")!.out, [8, 4]);
    assert.deepEqual(net.dw.weight.shape, [4, 1, 3, 3]);
    assert.equal(net.dw.groups, 4);
    assert.deepEqual(net.conv2.weight.shape, [2, 4, 1, 1]);
    assert.deepEqual(torch.noGrad(() => net.forward(x)).shape, [1, 2, 5, 5]);
  });

  test("gradients are narrowed with their tensors", () => {
    torch.manualSeed(8);
    const mlp = new MLP();
    const x = torch.randn([4, 5]);
    mlp.forward(x).pow(2).sum().backward();
    const grads = new Map(Array.from(mlp.namedParameters(), ([k, p]) => [k, torch.keep(p.grad!.clone())]));
    const weights = snapshot(mlp);
    prune(mlp, { criterion: "magnitude", ratio: 0.5, forward: () => mlp.forward(x) });
    // fc1 kept rows = fc2 kept columns: find them from the weights
    const kept = keptRows(weights.get("fc1.weight")!, mlp.fc1.weight);
    assert.equal(kept.length, 3);
    assert.ok(torch.equal(mlp.fc1.weight.grad!, narrowed(grads.get("fc1.weight")!, 0, kept)));
    assert.ok(torch.equal(mlp.fc1.bias!.grad!, narrowed(grads.get("fc1.bias")!, 0, kept)));
    assert.ok(torch.equal(mlp.fc2.weight.grad!, narrowed(grads.get("fc2.weight")!, 1, kept)));
    assert.ok(torch.equal(mlp.fc2.bias!.grad!, grads.get("fc2.bias")!));
  });

  test("round_to 4 on the conv net rounds the kept counts up", () => {
    torch.manualSeed(5);
    const net = new SkipNet();
    const x = torch.randn([1, 3, 6, 6]);
    const result = prune(net, { criterion: "magnitude", ratio: 0.5, roundTo: 4, forward: () => net.forward(x) });
    const layers = byName(result);
    assert.deepEqual(layers.get("conv1")!.out, [8, 4]);
    assert.deepEqual(layers.get("conv3")!.out, [6, 4], "3 kept, rounded up to 4");
    assert.deepEqual(layers.get("conv4")!.out, [10, 8], "5 kept, rounded up to 8");
    assert.deepEqual(layers.get("conv4")!.in, [14, 8]);
    assert.deepEqual(torch.noGrad(() => net.forward(x)).shape, [1, 2, 6, 6]);
  });

  test("ignored layers keep their groups whole", () => {
    torch.manualSeed(5);
    const net = new SkipNet();
    const x = torch.randn([1, 3, 6, 6]);
    const result = prune(net, { criterion: "magnitude", ratio: 0.5, ignoredLayers: ["conv2"], forward: () => net.forward(x) });
    assert.deepEqual(byName(result).get("conv1")!.out, [8, 8], "conv2 shares the residual group");
    assert.deepEqual(byName(result).get("conv3")!.out, [6, 3]);
    assert.ok(result.kept.some((k) => k.root === "conv1" && /conv2 is ignored/.test(k.reason)));
  });

  test("bad options are refused with what was wrong, before anything changes", () => {
    torch.manualSeed(5);
    const net = new SkipNet();
    const x = torch.randn([1, 3, 6, 6]);
    const weights = snapshot(net);
    const base: PruneOptions = { criterion: "magnitude", ratio: 0.3, forward: () => net.forward(x) };
    assert.throws(() => prune(net, { ...base, ratio: -0.1 }), (e: unknown) => e instanceof RangeError && /pruning ratio must be in \[0, 1\), got -0\.1/.test(e.message));
    assert.throws(() => prune(net, { ...base, ratio: 1 }), /pruning ratio must be in \[0, 1\), got 1/);
    assert.throws(() => prune(net, { ...base, ratio: Number.NaN }), /pruning ratio must be in \[0, 1\)/);
    assert.throws(() => prune(net, { ...base, criterion: "l1" }), /unknown pruning criterion "l1": use one of diff-pruning, taylor, magnitude, random, reinit/);
    assert.throws(() => prune(net, { ...base, ignoredLayers: ["conv9"] }), /cannot ignore "conv9": the model has no such layer/);
    assert.throws(() => prune(net, { ...base, roundTo: 0 }), /round-to must be a positive integer, got 0/);
    assert.throws(() => prune(net, { ...base, maxRatio: 0 }), /max ratio must be in \(0, 1\], got 0/);
    assert.throws(() => prune(net, { ...base, iterativeSteps: 0 }), /iterative steps must be a positive integer, got 0/);
    assert.throws(() => pruneUNet(tiny(), { criterion: "l2", ratio: 0.3, scheduler: new DDPMScheduler({ num_train_timesteps: 4 }) }), /unknown pruning criterion "l2"/);
    for (const [name, t] of net.stateDict()) assert.ok(torch.equal(t, weights.get(name)!), `${name} unchanged`);
  });
});
