// Pruning parity with the reference pipeline (Diff-Pruning's ddpm_prune.py on Torch-Pruning 1.3.7,
// test/fixtures/prune-parity): the groups in Torch-Pruning's order with their members, the channels
// each removes when scored on the model as the groups before it left it, and the pruned weights;
// and a latent UNet with multi-head attention pruned as ldm_prune.py does (ldm-tiny-pruned-magnitude).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { loadScheduler } from "../../src/diffusion/index.js";
import { accumulateGradients, countOpsAndParams, DependencyGraph, loadCalibration, prune, pruneUNet, pruningGroups, unetForward, type PruningGroup } from "../../src/pruning/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { fixture } from "../helpers/fixtures.js";

type Method = "magnitude" | "taylor" | "diff-pruning";
interface ReferenceGroup {
  root: string;
  removed: number[];
  members: string[];
}
const reference = JSON.parse(readFileSync(fixture("prune-parity", "reference.json"), "utf8")) as Record<Method, { timesteps_used: number; losses: number[]; groups_in_pruning_order: ReferenceGroup[] }>;
const base = (): UNet2DModel => UNet2DModel.fromPretrained(fixture("prune-parity", "base"));

/** Our group's prunable members in Torch-Pruning's words: "module:prune_out_channels" / ":prune_in_channels". */
function memberNames(graph: DependencyGraph, group: PruningGroup): string[] {
  const layers = new Set(graph.layers.map((l) => l.name));
  const names = new Set<string>();
  for (const { slot } of group.members) {
    const module = slot.tensor.slice(0, slot.tensor.lastIndexOf("."));
    const input = layers.has(module) && slot.tensor.endsWith(".weight") && slot.dim === 1;
    names.add(`${module}:prune_${input ? "in" : "out"}_channels`);
  }
  return [...names].sort();
}

/** Prunes the base model as the reference did and counts the tensors that equal the reference's (1e-4). */
function pruneAndCompare(method: Method): { total: number; shapes: number; equal: number; history: { root: string; removed: number[] }[] } {
  const model = base();
  const dir = fixture("prune-parity", "base");
  const calibration = method === "magnitude" ? null : loadCalibration(fixture("prune-parity", "base", "calibration.safetensors"), model.config);
  const report = pruneUNet(model, { criterion: method, ratio: 0.3, scheduler: loadScheduler(dir), calibration, ignoredLayers: ["conv_out"] });
  const counts = compareWith(model, method);
  model.dispose();
  return { ...counts, history: report.history };
}

/** How many of the reference's pruned tensors `model` has at the same shape, and equal to 1e-4. */
function compareWith(model: UNet2DModel, method: Method): { total: number; shapes: number; equal: number } {
  const expected = loadFile(fixture("prune-parity", `pruned-${method}`, "diffusion_pytorch_model.safetensors"));
  const ours = model.stateDict();
  let shapes = 0;
  let equal = 0;
  for (const [name, t] of expected) {
    const o = ours.get(name);
    assert.ok(o, `${name} is in the pruned model`);
    if (o.shape.join() !== t.shape.join()) continue;
    shapes++;
    if (torch.tidy(() => o.sub(t).abs().max().item()) <= 1e-4) equal++;
  }
  assert.equal(ours.size, expected.size, "no tensor more or less than the reference's");
  return { total: expected.size, shapes, equal };
}

describe("pruning parity with Torch-Pruning 1.3.7 (prune-parity)", () => {
  test("groups come in Torch-Pruning's order, with its members", () => {
    const model = base();
    const graph = DependencyGraph.build(model, unetForward(model));
    const groups = [...pruningGroups(graph, ["conv_out"])].filter((g) => g.blocked === null);
    const ref = reference.magnitude.groups_in_pruning_order;
    assert.deepEqual(
      groups.map((g) => g.root.name),
      ref.map((g) => g.root),
    );
    for (const [i, g] of groups.entries()) {
      const theirs = ref[i]!.members.filter((m) => !m.startsWith("_")).sort();
      assert.deepEqual(memberNames(graph, g), theirs, `members of ${g.root.name}`);
    }
    model.dispose();
  });

  test("magnitude: the same channels removed group by group, and every tensor equal", (t) => {
    const r = pruneAndCompare("magnitude");
    t.diagnostic(`magnitude: ${r.equal} of ${r.total} tensors equal`);
    assert.deepEqual(
      r.history.map(({ root, removed }) => ({ root, removed })),
      reference.magnitude.groups_in_pruning_order.map(({ root, removed }) => ({ root, removed })),
    );
    assert.equal(r.shapes, r.total);
    assert.equal(r.equal, r.total, `${r.equal} of ${r.total} tensors equal`);
  });

  test("taylor and diff-pruning from one gradient loop: the reference's losses and T', all shapes and at least 97% of tensors equal", (t) => {
    // One pass over t = 0..999 serves both: diff-pruning's gradients are the sum up to T'.
    const model = base();
    const dir = fixture("prune-parity", "base");
    const scheduler = loadScheduler(dir);
    const calibration = loadCalibration(fixture("prune-parity", "base", "calibration.safetensors"), model.config);
    const ref = reference.taylor;
    const dp = reference["diff-pruning"];
    // T' from the reference's own losses: the first t whose loss is below 0.05 x the max so far.
    let max = 0;
    const tPrime = dp.losses.findIndex((l) => ((max = Math.max(max, l)), l < 0.05 * max));
    assert.equal(tPrime + 1, dp.timesteps_used);
    let atTPrime = new Map<string, Tensor>();
    const report = accumulateGradients(model, {
      ...calibration,
      scheduler,
      thr: null,
      onStep: (step) => {
        if (step === tPrime) atTPrime = new Map(Array.from(model.namedParameters(), ([n, p]) => [n, torch.keep(p.grad!.clone())] as const));
      },
    });
    assert.equal(report.losses.length, ref.timesteps_used);
    report.losses.forEach((l, t) => assert.ok(Math.abs(l - ref.losses[t]!) <= 1e-4 * ref.losses[t]!, `loss at t=${t}: ${l} vs ${ref.losses[t]}`));
    const atEnd = new Map(Array.from(model.namedParameters(), ([n, p]) => [n, torch.keep(p.grad!.clone())] as const));
    model.dispose();
    for (const [method, grads] of [["taylor", atEnd], ["diff-pruning", atTPrime]] as const) {
      const pruned = base();
      for (const [n, p] of pruned.namedParameters()) p.grad = grads.get(n)!;
      prune(pruned, { criterion: method, ratio: 0.3, forward: unetForward(pruned), ignoredLayers: ["conv_out"] });
      const r = compareWith(pruned, method);
      t.diagnostic(`${method}: ${r.equal} of ${r.total} tensors equal, ${r.shapes} of the same shape`);
      assert.equal(r.shapes, r.total, `${method}: every shape`);
      assert.ok(r.equal >= 0.97 * r.total, `${method}: ${r.equal} of ${r.total} tensors equal`);
      pruned.dispose();
    }
    torch.dispose([...atEnd.values(), ...atTPrime.values()]);
  });

  test("a latent UNet with multi-head attention (ldm-tiny, as ldm_prune.py prunes it): params, MACs and every tensor", () => {
    const model = UNet2DModel.fromPretrained(fixture("ldm-tiny", "unet"));
    const forward = unetForward(model);
    const before = countOpsAndParams(model, forward);
    prune(model, { criterion: "magnitude", ratio: 0.3, forward, ignoredLayers: ["conv_out"] });
    const after = countOpsAndParams(model, forward);
    const ref = JSON.parse(readFileSync(fixture("ldm-tiny-pruned-magnitude", "reference.json"), "utf8")) as { params: number[]; macs: number[] };
    assert.deepEqual([before.params, after.params], ref.params);
    assert.deepEqual([before.macs, after.macs], ref.macs);
    const expected = loadFile(fixture("ldm-tiny-pruned-magnitude", "diffusion_pytorch_model.safetensors"));
    const ours = model.stateDict();
    assert.equal(ours.size, expected.size);
    for (const [name, t] of expected) {
      const o = ours.get(name)!;
      assert.deepEqual(o.shape, t.shape, name);
      assert.ok(torch.tidy(() => o.sub(t).abs().max().item()) <= 1e-4, `${name} equals the reference's`);
    }
    model.dispose();
  });
});
