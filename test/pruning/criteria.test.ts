// The criteria registry: names and order, what each criterion needs, the unknown-name error,
// reinit's re-initialisation after pruning, and criterion objects passed in directly (a criterion
// is any object with a name, its gradients and a score of a group).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { Conv2d, GroupNorm, Linear } from "../../src/nn/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import {
  CRITERIA,
  criterionNamed,
  DependencyGraph,
  Importance,
  meanReduced,
  prune,
  pruneUNet,
  pruningGroups,
  type Criterion,
} from "../../src/pruning/index.js";
import { fixture } from "../helpers/fixtures.js";
import { MLP, snapshot } from "./nets.js";

const tiny = (): UNet2DModel => UNet2DModel.fromPretrained(fixture("unet-tiny"));

describe("the registry", () => {
  test("the paper's criteria, in order", () => {
    assert.deepEqual(
      CRITERIA.map((c) => c.name),
      ["diff-pruning", "taylor", "magnitude", "random", "reinit"],
    );
    for (const c of CRITERIA) {
      assert.equal(criterionNamed(c.name), c);
      assert.ok(c.description.length > 0 && !c.description.includes("\n"), `${c.name}: a one-line description`);
    }
  });

  test("which gradients each scores with; only reinit has an after-pruning step", () => {
    assert.deepEqual(Object.fromEntries(CRITERIA.map((c) => [c.name, c.gradients])), {
      "diff-pruning": "informative",
      taylor: "all",
      magnitude: null,
      random: null,
      reinit: null,
    });
    assert.deepEqual(
      CRITERIA.filter((c) => c.afterPruning).map((c) => c.name),
      ["reinit"],
    );
  });

  test("an unknown name says which names there are", () => {
    const message = /unknown pruning criterion "l1": use one of diff-pruning, taylor, magnitude, random, reinit/;
    assert.throws(() => criterionNamed("l1"), message);
    const mlp = new MLP();
    const x = torch.keep(torch.randn([2, 5]));
    assert.throws(() => new Importance("l1", DependencyGraph.build(mlp, () => mlp.forward(x))), message);
  });
});

describe("reinit", () => {
  test("afterPruning re-initialises every conv, linear and GroupNorm at its shape", () => {
    const model = tiny();
    const before = snapshot(model);
    torch.manualSeed(1);
    criterionNamed("reinit").afterPruning!(model);
    let layers = 0;
    for (const [name, m] of model.namedModules()) {
      if (m instanceof Conv2d || m instanceof Linear) {
        layers++;
        const w = m.param("weight");
        assert.deepEqual(w.shape, before.get(`${name}.weight`)!.shape);
        assert.ok(!torch.equal(w, before.get(`${name}.weight`)!), `${name}.weight re-drawn`);
      } else if (m instanceof GroupNorm && m.optionalParam("weight")) {
        assert.ok(m.param("weight").toArray().every((v) => v === 1), `${name}.weight is ones`);
        assert.ok(m.param("bias").toArray().every((v) => v === 0), `${name}.bias is zeros`);
      }
    }
    assert.ok(layers > 10);
  });

  test("pruneUNet with reinit: random's channels, new weights", () => {
    const scheduler = new DDPMScheduler({ num_train_timesteps: 4 });
    const random = tiny();
    torch.manualSeed(2);
    const r = pruneUNet(random, { criterion: "random", ratio: 0.3, scheduler });
    const reinit = tiny();
    torch.manualSeed(2);
    const report = pruneUNet(reinit, { criterion: "reinit", ratio: 0.3, scheduler });
    assert.equal(report.method, "reinit");
    assert.deepEqual(report.history, r.history, "the same channels removed");
    const a = random.stateDict();
    for (const [name, t] of reinit.stateDict()) {
      assert.deepEqual(t.shape, a.get(name)!.shape, name);
      if (/conv.*\.weight$/.test(name)) assert.ok(!torch.equal(t, a.get(name)!), `${name} re-initialised`);
    }
  });
});

describe("a criterion object passed in directly", () => {
  /** Scores channel i with i: the lowest indices go. */
  const byIndex: Criterion = {
    name: "by-index",
    description: "channel index",
    gradients: null,
    score: (group) => Float64Array.from({ length: group.channels }, (_, i) => i),
  };

  test("prune scores with it", () => {
    torch.manualSeed(3);
    const mlp = new MLP();
    const x = torch.keep(torch.randn([2, 5]));
    const result = prune(mlp, { criterion: byIndex, ratio: 0.5, forward: () => mlp.forward(x) });
    assert.deepEqual(result.history, [{ step: 1, root: "fc1", removed: [0, 1, 2, 3] }]);
  });

  test("the shared reduction: a sum |w| criterion equals magnitude's reduction of |w|", () => {
    torch.manualSeed(4);
    const mlp = new MLP();
    const x = torch.keep(torch.randn([2, 5]));
    const graph = DependencyGraph.build(mlp, () => mlp.forward(x));
    const group = [...pruningGroups(graph)].find((g) => g.root.name === "fc1")!;
    const l1: Criterion = {
      name: "l1",
      description: "sum |w|",
      gradients: null,
      score: (g, context) => meanReduced(g, context, (rows) => rows.weight().abs().sum(1)),
    };
    const scores = new Importance(l1, graph).of(group);
    const w1 = mlp.fc1.weight.abs().sum(1).toArray();
    const w2 = mlp.fc2.weight.abs().sum(0).toArray();
    const raw = w1.map((v, i) => (v + w2[i]!) / 2);
    const mean = raw.reduce((s, v) => s + v, 0) / raw.length;
    raw.forEach((v, i) => assert.ok(Math.abs(scores[i]! - v / mean) < 1e-6, `channel ${i}`));
  });

  test("pruneUNet: the gradient loop its `gradients` asks for, its name in the report, its afterPruning", () => {
    const scheduler = new DDPMScheduler({ num_train_timesteps: 5 });
    torch.manualSeed(5);
    const calibration = { images: torch.keep(torch.rand([1, 1, 16, 16]).mul(2).sub(1)), noise: torch.keep(torch.randn([1, 1, 16, 16])) };
    let after = 0;
    for (const gradients of ["all", "informative", null] as const) {
      let sawGradients = false;
      const c: Criterion = {
        ...byIndex,
        name: `by-index-${gradients}`,
        gradients,
        score: (group, context) => {
          sawGradients ||= context.graph.module.parameters().some((p) => p.grad !== null);
          return byIndex.score(group, context);
        },
        afterPruning: () => after++,
      };
      const report = pruneUNet(tiny(), { criterion: c, ratio: 0.3, scheduler, calibration, thr: 0.5 });
      assert.equal(report.method, c.name);
      assert.equal(sawGradients, gradients !== null, `${c.name}: scored with gradients`);
      if (gradients === null) assert.equal(report.gradients, null);
      else {
        assert.ok(report.gradients !== null);
        assert.equal(report.gradients.thr, gradients === "informative" ? 0.5 : null);
        if (gradients === "all") assert.equal(report.gradients.losses.length, 5);
      }
    }
    assert.equal(after, 3);
  });
});
