// Params and MACs by Torch-Pruning's count_ops_and_params rules (DESIGN section 5), so figures are
// comparable with the paper's: conv = kh*kw*Cin/groups*Cout*Hout*Wout (+ Cout*Hout*Wout with a
// bias); linear = numel(input)*out (+ out with a bias); norms = 2*numel(input); activations,
// interpolation, attention matmuls and softmax count 0. The forward is traced once.
import * as torch from "../torch/index.js";
import type { ObservedOp, ObservedTensor, Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";

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

const numel = (t: ObservedTensor): number => t.shape.reduce((a, b) => a * b, 1);

function macsOf(op: ObservedOp): number {
  const [x, w, b] = op.args as (ObservedTensor | null)[];
  const out = op.outputs[0]!;
  switch (op.op) {
    case "conv2d": {
      const [, cinPerGroup, kh, kw] = w!.shape as [number, number, number, number];
      const perOutput = kh * kw * cinPerGroup;
      return numel(out) * perOutput + (b ? numel(out) : 0);
    }
    case "linear":
      return numel(x!) * w!.shape[0]! + (b ? w!.shape[0]! : 0);
    case "groupNorm":
    case "layerNorm":
    case "batchNorm":
      return 2 * numel(x!);
    default:
      return 0;
  }
}

/**
 * Counts `model`'s parameters and the MACs of `forward` (call it with a batch of one, as the
 * paper's figures are per image), overall and per layer in the order the forward runs them.
 */
export function countOpsAndParams(model: Module, forward: () => Tensor | Tensor[]): Cost {
  const owner = new Map<number, string>();
  for (const [name, p] of model.namedParameters()) owner.set(p.handle, name.slice(0, Math.max(0, name.lastIndexOf("."))));
  const byLayer = new Map<string, LayerCost>();
  torch.noGrad(() =>
    torch.tidy(() => {
      torch.observeOps((op) => {
        const macs = macsOf(op);
        if (macs === 0) return;
        const param = (op.op === "groupNorm" || op.op === "layerNorm" ? op.args[2] : op.args[1]) as ObservedTensor | null;
        const name = (param && owner.get(param.handle)) ?? `${op.op}#${byLayer.size}`;
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
