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
import { countOpsAndParams, DependencyGraph, loadCalibration, prune, pruneUNet, pruningGroups, unetForward, type PruningGroup } from "../../src/pruning/index.js";
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
function pruneAndCompare(method: Method): { total: number; shapes: number; equal: number; history: { root: string; removed: number[] }[]; tPrime: number | null; losses: number[] } {
  const model = base();
  const dir = fixture("prune-parity", "base");
  const calibration = method === "magnitude" ? null : loadCalibration(fixture("prune-parity", "base", "calibration.safetensors"), model.config);
  const report = pruneUNet(model, { criterion: method, ratio: 0.3, scheduler: loadScheduler(dir), calibration, ignoredLayers: ["conv_out"] });
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
  const tPrime = report.gradients?.tPrime ?? null;
  model.dispose();
  return { total: expected.size, shapes, equal, history: report.history, tPrime, losses: report.gradients?.losses ?? [] };
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

  test("magnitude: the same channels removed group by group, and every tensor equal", () => {
    const r = pruneAndCompare("magnitude");
    assert.deepEqual(
      r.history.map(({ root, removed }) => ({ root, removed })),
      reference.magnitude.groups_in_pruning_order.map(({ root, removed }) => ({ root, removed })),
    );
    assert.equal(r.shapes, r.total);
    assert.equal(r.equal, r.total, `${r.equal} of ${r.total} tensors equal`);
  });

  test("diff-pruning: T' as the reference's, all shapes and at least 97% of tensors equal", () => {
    const r = pruneAndCompare("diff-pruning");
    const ref = reference["diff-pruning"];
    assert.equal(r.tPrime! + 1, ref.timesteps_used, "timesteps 0..T' accumulated");
    assert.equal(r.losses.length, ref.losses.length);
    r.losses.forEach((l, t) => assert.ok(Math.abs(l - ref.losses[t]!) <= 1e-4 * ref.losses[t]!, `loss at t=${t}: ${l} vs ${ref.losses[t]}`));
    assert.equal(r.shapes, r.total);
    assert.ok(r.equal >= 0.97 * r.total, `${r.equal} of ${r.total} tensors equal`);
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
