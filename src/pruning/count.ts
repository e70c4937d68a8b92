// Params and MACs by Torch-Pruning's count_ops_and_params rules (DESIGN section 5), so figures are
// comparable with the paper's. Each op counts what its rule in OP_RULES says (conv, linear and the
// norms; activations, interpolation, attention matmuls and softmax count 0), charged to the module
// whose weight it takes. The forward is traced once.
import * as torch from "../torch/index.js";
import { isObservedTensor, OP_RULES, type Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import { parentPath } from "./graph.js";

export interface LayerCost {
  /** Module path of the layer (the parameter's owner). */
  name: string;
  op: string;
  params: number;
  macs: number;
}

export interface Cost {
  params: number;
  macs: number;
  layers: LayerCost[];
}

/**
 * Counts `model`'s parameters and the MACs of `forward` (call it with a batch of one, as the
 * paper's figures are per image), overall and per layer in the order the forward runs them.
 */
export function countOpsAndParams(model: Module, forward: () => Tensor | Tensor[]): Cost {
  const owner = new Map<number, string>();
  for (const [name, p] of model.namedParameters()) owner.set(p.handle, parentPath(name));
  const byLayer = new Map<string, LayerCost>();
  torch.noGrad(() =>
    torch.tidy(() => {
      torch.observeOps((op) => {
        const rule = OP_RULES.get(op.op);
        const macs = rule?.macs?.(op.args, op.outputs) ?? 0;
        if (macs === 0) return;
        // Charged to the module whose weight the op takes; a weight that is no parameter, to the op.
        const weight = rule?.module === undefined ? undefined : op.args[rule.module];
        const name = (isObservedTensor(weight) ? owner.get(weight.handle) : undefined) ?? `${op.op}#${byLayer.size}`;
        const entry = byLayer.get(name) ?? { name, op: op.op, params: 0, macs: 0 };
        entry.macs += macs;
        byLayer.set(name, entry);
      }, forward); // the output stays in the scope, freed with it
    }),
  );
  const modules = new Map(model.namedModules());
  for (const entry of byLayer.values()) {
    const m = modules.get(entry.name);
    if (m) for (const [, p] of m.namedParameters()) entry.params += p.numel;
  }
  const layers = [...byLayer.values()];
  return { params: model.numParameters(), macs: layers.reduce((s, l) => s + l.macs, 0), layers };
}
