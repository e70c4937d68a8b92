// Channel importance of a group (DESIGN section 5, Torch-Pruning 1.3's MagnitudeImportance and
// TaylorImportance): each conv/linear weight in the group scores the channels it holds (output
// rows of producers, input columns of consumers); the scores are summed per root channel, divided
// by the number of contributing layers ("mean" reduction), then by their mean. The DDPM-codebase
// variant (the official repository's ddpm_exp/, which made the paper's CIFAR-10 and CelebA tables)
// scores the gradient criteria otherwise: see IMPORTANCE_VARIANTS.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { DependencyGraph } from "./graph.js";
import type { PruningGroup } from "./groups.js";

export const CRITERIA = ["diff-pruning", "taylor", "magnitude", "random", "reinit"] as const;
export type Criterion = (typeof CRITERIA)[number];

/** Criteria that need gradients of the denoising loss accumulated into the weights' .grad. */
export const needsGradients = (c: Criterion): boolean => c === "taylor" || c === "diff-pruning";

/**
 * Which codebase's importance the gradient criteria use. "diffusers" (default): ddpm_prune.py on
 * Torch-Pruning 1.3.7, as above. "ddpm-exp": ddpm_exp/prune.py with its own Torch-Pruning copy,
 * where taylor and diff-pruning share one score: per channel, (w * g)^2 summed over each conv/linear
 * member's other dims, plus |w * g| of GroupNorm affine weights, summed over the members with no
 * mean and no normaliser (the gradient loop also stops before the backward of the step below thr).
 */
export const IMPORTANCE_VARIANTS = ["diffusers", "ddpm-exp"] as const;
export type ImportanceVariant = (typeof IMPORTANCE_VARIANTS)[number];

export function checkImportanceVariant(name: string): ImportanceVariant {
  if (!(IMPORTANCE_VARIANTS as readonly string[]).includes(name)) throw new Error(`unknown importance variant "${name}": use one of ${IMPORTANCE_VARIANTS.join(", ")}`);
  return name as ImportanceVariant;
}

export function checkCriterion(name: string): Criterion {
  if (!(CRITERIA as readonly string[]).includes(name)) throw new Error(`unknown pruning method "${name}": use one of ${CRITERIA.join(", ")}`);
  return name as Criterion;
}

/** w * g of a weight, or a clear error when its gradient was not accumulated. */
function weightTimesGrad(criterion: Criterion, w: Tensor, name: string): Tensor {
  const g = w.grad;
  if (!g) throw new Error(`${criterion} importance needs gradients, but ${name} has none: accumulate them first (accumulateGradients)`);
  return w.mul(g);
}

/** Per-channel scores of one weight along `dim` (0: output rows, 1: input columns; a 1-D norm weight: its channels). */
function channelScores(criterion: Criterion, variant: ImportanceVariant, w: Tensor, dim: number, name: string): Float64Array {
  return torch.noGrad(() =>
    torch.tidy(() => {
      if (w.ndim === 1) return new Float64Array(weightTimesGrad(criterion, w, name).abs().toArray()); // ddpm-exp's GroupNorm term
      const rows = (t: Tensor) => (dim === 0 ? t : t.transpose(0, 1)).flatten(1);
      if (criterion === "magnitude") return new Float64Array(rows(w).pow(2).sum(1).toArray());
      const wg = rows(weightTimesGrad(criterion, w, name));
      if (variant === "ddpm-exp") return new Float64Array(wg.pow(2).sum(1).toArray());
      // taylor (multivariable): |sum(w * g)|; diff-pruning: sum |w * g|
      return new Float64Array((criterion === "taylor" ? wg.sum(1).abs() : wg.abs().sum(1)).toArray());
    }),
  );
}

export class Importance {
  readonly #weights = new Set<string>();
  /** GroupNorm weights: scored by the ddpm-exp variant of the gradient criteria only. */
  readonly #normWeights = new Set<string>();
  readonly #graph: DependencyGraph;
  readonly #summed: boolean;

  constructor(
    readonly criterion: Criterion,
    graph: DependencyGraph,
    readonly variant: ImportanceVariant = "diffusers",
  ) {
    this.#graph = graph;
    for (const l of graph.layers) this.#weights.add(l.weight);
    this.#summed = variant === "ddpm-exp" && needsGradients(criterion);
    if (this.#summed) for (const n of graph.norms) this.#normWeights.add(`${n.name}.weight`);
  }

  /**
   * One score per root channel of `group`, from the weights as they are now (Torch-Pruning scores
   * each group after the groups before it were pruned); higher means more important.
   */
  of(group: PruningGroup): Float64Array {
    const n = group.channels;
    if (this.criterion === "random" || this.criterion === "reinit") return new Float64Array(torch.tidy(() => torch.rand([n], { dtype: "float64" }).toArray()));
    const params = new Map(this.#graph.module.namedParameters());
    const total = new Float64Array(n);
    let contributors = 0;
    for (const m of group.members) {
      const scored = (this.#weights.has(m.slot.tensor) && m.slot.dim <= 1) || this.#normWeights.has(m.slot.tensor);
      // ddpm-exp sums only members that hold each root channel once (its "aligned" scores)
      if (!scored || (this.#summed && m.positions.length !== n)) continue;
      const scores = channelScores(this.criterion, this.variant, params.get(m.slot.tensor)!, m.slot.dim, m.slot.tensor);
      m.positions.forEach((p, i) => (total[m.roots[i]!]! += scores[p]!));
      contributors++;
    }
    if (contributors === 0) return total.fill(1);
    if (this.#summed) return total;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += total[i]! / contributors / n;
    for (let i = 0; i < n; i++) total[i] = total[i]! / contributors / (mean === 0 ? 1 : mean);
    return total;
  }
}
