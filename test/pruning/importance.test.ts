// Importance criteria against the formulas computed here in plain JS from the weights and
// gradients: per weight slot of the group (output rows, input columns, through concat offsets)
// magnitude = sum w^2, taylor = |sum w*g|, diff-pruning = sum |w*g|; summed per root channel,
// divided by the contributing slots, then by the mean. Random scores: uniform, seeded by torch.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Conv2d, GroupNorm, Module } from "../../src/nn/index.js";
import { DependencyGraph, Importance, pruningGroups, type PruningGroup } from "../../src/pruning/index.js";
import { assertClose } from "../helpers/assert.js";
import { mulberry32 } from "../helpers/random.js";
import { MLP, SkipNet } from "./nets.js";

/** The values of `t` at index j along dim 0 (a row) or dim 1 (a column), every other dim flattened. */
function along(values: number[], shape: readonly number[], dim: 0 | 1, j: number): number[] {
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const [rows, cols] = [shape[0]!, shape[1] ?? 1];
  const out: number[] = [];
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) if ((dim === 0 ? r : c) === j) for (let k = 0; k < inner; k++) out.push(values[(r * cols + c) * inner + k]!);
  return out;
}

/** A slot of the group, listed by hand: root channel j is index offset + j along dim of the weight. */
interface Contribution {
  weight: Tensor;
  dim: 0 | 1;
  offset?: number;
}

/** The criterion's score of each root channel, from the formula. */
function expectedScores(criterion: "magnitude" | "taylor" | "diff-pruning", channels: number, slots: Contribution[]): number[] {
  const total = new Array<number>(channels).fill(0);
  for (const { weight, dim, offset = 0 } of slots) {
    const w = weight.toArray();
    const g = criterion === "magnitude" ? null : weight.grad!.toArray();
    for (let j = 0; j < channels; j++) {
      const ws = along(w, weight.shape, dim, j + offset);
      if (g === null) total[j]! += ws.reduce((s, v) => s + v * v, 0);
      else {
        const gs = along(g, weight.shape, dim, j + offset);
        const products = ws.map((v, i) => v * gs[i]!);
        total[j]! += criterion === "taylor" ? Math.abs(products.reduce((s, v) => s + v, 0)) : products.reduce((s, v) => s + Math.abs(v), 0);
      }
    }
  }
  const perSlot = total.map((v) => v / slots.length);
  const mean = perSlot.reduce((s, v) => s + v, 0) / channels;
  return perSlot.map((v) => v / mean);
}

/** Fills every parameter's .grad with seeded values in [-1, 1). */
function setGrads(model: Module, seed: number): void {
  const rand = mulberry32(seed);
  for (const p of model.parameters()) p.grad = torch.tensor(Array.from({ length: p.numel }, () => 2 * rand() - 1)).reshape([...p.shape]);
}

const groupOf = (graph: DependencyGraph, root: string): PruningGroup => {
  const g = [...pruningGroups(graph)].find((x) => x.root.name === root);
  assert.ok(g, `a group rooted at ${root}`);
  return g;
};

const mean = (xs: ArrayLike<number>): number => Array.from(xs).reduce((s, v) => s + v, 0) / xs.length;

describe("importance of an MLP's hidden channels (fc1 -> SiLU -> fc2)", () => {
  torch.manualSeed(1);
  const mlp = new MLP();
  const x = torch.keep(torch.randn([4, 5]));
  const graph = DependencyGraph.build(mlp, () => mlp.forward(x));
  const group = groupOf(graph, "fc1");
  const slots: Contribution[] = [
    { weight: mlp.fc1.weight, dim: 0 },
    { weight: mlp.fc2.weight, dim: 1 },
  ];

  test("the group: fc1's rows and bias, fc2's columns; fc2's outputs are the model's", () => {
    assert.equal(group.channels, 7);
    assert.deepEqual(group.members.map((m) => `${m.slot.tensor}:${m.slot.dim}`).sort(), ["fc1.bias:0", "fc1.weight:0", "fc2.weight:1"]);
    assert.notEqual(groupOf(graph, "fc2").blocked, null);
  });

  test("magnitude = mean over fc1's row and fc2's column of sum w^2, over its mean", () => {
    const scores = new Importance("magnitude", graph).of(group);
    assertClose(scores, expectedScores("magnitude", 7, slots), 1e-5, "magnitude");
    assert.ok(Math.abs(mean(scores) - 1) < 1e-12);
  });

  test("biases are not scored", () => {
    const before = new Importance("magnitude", graph).of(group);
    const bias = mlp.fc1.bias!;
    const saved = torch.keep(bias.detach().clone());
    torch.noGrad(() => bias.copy_(torch.tensor([100, 0, -50, 3, 0, 0, 7])));
    const after = new Importance("magnitude", graph).of(group);
    torch.noGrad(() => bias.copy_(saved));
    assert.deepEqual(Array.from(after), Array.from(before));
  });

  test("taylor = |sum w*g| and diff-pruning = sum |w*g|, with gradients set by hand", () => {
    setGrads(mlp, 7);
    for (const c of ["taylor", "diff-pruning"] as const) {
      const scores = new Importance(c, graph).of(group);
      assertClose(scores, expectedScores(c, 7, slots), 1e-5, c);
    }
    // the two differ: sign cancellations inside a channel count for taylor only
    const t = new Importance("taylor", graph).of(group);
    const d = new Importance("diff-pruning", graph).of(group);
    assert.ok(Array.from(t).some((v, i) => Math.abs(v - d[i]!) > 1e-3));
  });

  test("taylor and diff-pruning with the gradients of a backward", () => {
    for (const p of mlp.parameters()) p.grad = null;
    mlp.forward(x).pow(2).sum().backward();
    assert.ok(mlp.fc1.weight.grad !== null);
    for (const c of ["taylor", "diff-pruning"] as const) assertClose(new Importance(c, graph).of(group), expectedScores(c, 7, slots), 1e-5, c);
  });

  test("gradient criteria without gradients say what to do", () => {
    for (const p of mlp.parameters()) p.grad = null;
    assert.throws(() => new Importance("taylor", graph).of(group), /taylor importance needs gradients, but fc1\.weight has none: accumulate them first/);
    assert.throws(() => new Importance("diff-pruning", graph).of(group), /diff-pruning importance needs gradients/);
  });

  test("random: one uniform [0, 1) score per channel, reproducible with torch.manualSeed", () => {
    for (const c of ["random", "reinit"] as const) {
      const imp = new Importance(c, graph);
      torch.manualSeed(42);
      const a = imp.of(group);
      const b = imp.of(group);
      torch.manualSeed(42);
      const again = imp.of(group);
      assert.equal(a.length, 7);
      assert.ok(Array.from(a).every((v) => v >= 0 && v < 1), `${c}: ${Array.from(a).join(", ")}`);
      assert.deepEqual(Array.from(again), Array.from(a), `${c} is reproducible`);
      assert.notDeepEqual(Array.from(b), Array.from(a), `${c}: successive draws differ`);
    }
  });
});

describe("importance in a conv net with a residual add and a skip concat", () => {
  torch.manualSeed(2);
  const net = new SkipNet();
  const x = torch.keep(torch.randn([1, 3, 5, 5]));
  const graph = DependencyGraph.build(net, () => net.forward(x));
  const residual = groupOf(graph, "conv1");
  const concat = groupOf(graph, "conv3");
  const last = groupOf(graph, "conv4");
  // conv2's output and input both carry the residual channels: two slots of one layer
  const residualSlots: Contribution[] = [
    { weight: net.conv1.weight, dim: 0 },
    { weight: net.conv2.weight, dim: 0 },
    { weight: net.conv2.weight, dim: 1 },
    { weight: net.conv3.weight, dim: 1 },
    { weight: net.conv4.weight, dim: 1 },
  ];
  const concatSlots: Contribution[] = [
    { weight: net.conv3.weight, dim: 0 },
    { weight: net.conv4.weight, dim: 1, offset: 8 },
  ];
  const lastSlots: Contribution[] = [
    { weight: net.conv4.weight, dim: 0 },
    { weight: net.head.weight, dim: 1 },
  ];
  setGrads(net, 11);

  for (const c of ["magnitude", "taylor", "diff-pruning"] as const) {
    test(`${c}: the residual group, the concatenated group (conv4's inputs 8..13) and conv4's group`, () => {
      const imp = new Importance(c, graph);
      assertClose(imp.of(residual), expectedScores(c, 8, residualSlots), 1e-5, `${c} residual`);
      assertClose(imp.of(concat), expectedScores(c, 6, concatSlots), 1e-5, `${c} concat`);
      assertClose(imp.of(last), expectedScores(c, 10, lastSlots), 1e-5, `${c} conv4`);
    });
  }

  test("the concat offset matters: conv4's columns 0..5 would give other scores", () => {
    const wrong = expectedScores("magnitude", 6, [concatSlots[0]!, { weight: net.conv4.weight, dim: 1 }]);
    const got = new Importance("magnitude", graph).of(concat);
    assert.ok(Array.from(got).some((v, i) => Math.abs(v - wrong[i]!) > 1e-3));
  });
});

describe("importance of a group a GroupNorm normalises", () => {
  class NormNet extends Module {
    readonly conv1 = this.registerModule("conv1", new Conv2d(2, 4, 3, { padding: 1 }));
    readonly norm = this.registerModule("norm", new GroupNorm(2, 4));
    readonly conv2 = this.registerModule("conv2", new Conv2d(4, 3, 3));
    forward(x: Tensor): Tensor {
      return this.conv2.forward(this.norm.forward(this.conv1.forward(x)).silu());
    }
  }
  torch.manualSeed(3);
  const net = new NormNet();
  const x = torch.keep(torch.randn([1, 2, 6, 6]));
  const graph = DependencyGraph.build(net, () => net.forward(x));
  const group = groupOf(graph, "conv1");

  test("conv weights are scored, the norm's affine weights are not", () => {
    assert.equal(group.channelGroups, 2);
    assert.ok(group.members.some((m) => m.slot.tensor === "norm.weight"));
    torch.noGrad(() => net.norm.param("weight").copy_(torch.tensor([10, 0.1, 5, 2])));
    const slots: Contribution[] = [
      { weight: net.conv1.weight, dim: 0 },
      { weight: net.conv2.weight, dim: 1 },
    ];
    assertClose(new Importance("magnitude", graph).of(group), expectedScores("magnitude", 4, slots), 1e-5, "magnitude");
    setGrads(net, 5);
    assertClose(new Importance("diff-pruning", graph).of(group), expectedScores("diff-pruning", 4, slots), 1e-5, "diff-pruning");
  });

  test("ddpm-exp: sum over conv members of (w*g)^2 per channel plus |w*g| of the norm's weight, no mean, no normaliser", () => {
    setGrads(net, 9);
    const perChannel = (weight: Tensor, dim: 0 | 1, j: number): number => {
      const w = along(weight.toArray(), weight.shape, dim, j);
      const g = along(weight.grad!.toArray(), weight.shape, dim, j);
      return w.reduce((s, v, i) => s + (v * g[i]!) ** 2, 0);
    };
    const nw = net.norm.param("weight");
    const normTerm = nw.toArray().map((v, j) => Math.abs(v * nw.grad!.toArray()[j]!));
    const expected = Array.from({ length: 4 }, (_, j) => perChannel(net.conv1.weight, 0, j) + perChannel(net.conv2.weight, 1, j) + normTerm[j]!);
    for (const c of ["taylor", "diff-pruning"] as const) assertClose(new Importance(c, graph, "ddpm-exp").of(group), expected, 1e-5, `${c} ddpm-exp`);
    // magnitude has no ddpm-exp form: the diffusers formula stays
    assertClose(new Importance("magnitude", graph, "ddpm-exp").of(group), new Importance("magnitude", graph).of(group), 0, "magnitude");
  });
});
