// What a UNet checkpoint's tensors must be before they become the model's parameters: floating
// point (every parameter of the UNet is), and finite. A NaN or Inf weight would otherwise spread
// into every image sampled and every model pruned or fine-tuned from it.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export class WeightsError extends Error {
  override name = "WeightsError";
}

const FLOAT_DTYPES: readonly torch.DType[] = ["float32", "float64"];

/** NaN, +Inf and -Inf counts of a float tensor. */
function nonFinite(t: Tensor): { nan: number; posInf: number; negInf: number } {
  return torch.tidy(() => {
    if (t.isfinite().logicalNot().sum().item() === 0) return { nan: 0, posInf: 0, negInf: 0 };
    return {
      nan: t.isnan().sum().item(),
      posInf: t.eq(Infinity).sum().item(),
      negInf: t.eq(-Infinity).sum().item(),
    };
  });
}

/** Throws a WeightsError naming `file` and the first tensor that is not float or not finite. */
export function checkWeights(weights: Map<string, Tensor>, file: string): void {
  for (const [name, t] of weights) {
    const what = `${file}: tensor ${JSON.stringify(name)}`;
    if (!FLOAT_DTYPES.includes(t.dtype))
      throw new WeightsError(`${what} is ${t.dtype} but the UNet's parameters are floating point (F32, F16, BF16 or F64): the file is not a UNet checkpoint, or was written wrongly; re-export it with float weights`);
    const bad = nonFinite(t);
    if (bad.nan + bad.posInf + bad.negInf === 0) continue;
    const counts = [[bad.nan, "NaN"], [bad.posInf, "+Inf"], [bad.negInf, "-Inf"]].filter(([n]) => n !== 0).map(([n, s]) => `${n} ${s}`);
    const held = bad.nan === t.numel ? `is all NaN (${t.numel} values)` : `holds ${counts.join(", ")} of its ${t.numel} values`;
    throw new WeightsError(`${what} ${held}: the weights are corrupt (a training run that diverged?); use an earlier checkpoint or retrain`);
  }
}
