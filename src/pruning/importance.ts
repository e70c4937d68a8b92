// Channel importance of a group (DESIGN section 5, Torch-Pruning 1.3's MagnitudeImportance and
// TaylorImportance): each conv/linear weight in the group scores the channels it holds (output
// rows of producers, input columns of consumers); the scores are summed per root channel, divided
// by the number of contributing layers ("mean" reduction), then by their mean.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { DependencyGraph } from "./graph.js";
import type { PruningGroup } from "./groups.js";

export const CRITERIA = ["diff-pruning", "taylor", "magnitude", "random", "reinit"] as const;
export type Criterion = (typeof CRITERIA)[number];

/** Criteria that need gradients of the denoising loss accumulated into the weights' .grad. */
export const needsGradients = (c: Criterion): boolean => c === "taylor" || c === "diff-pruning";

export function checkCriterion(name: string): Criterion {
  if (!(CRITERIA as readonly string[]).includes(name)) throw new Error(`unknown pruning method "${name}": use one of ${CRITERIA.join(", ")}`);
  return name as Criterion;
}

/** Per-channel scores of one weight along `dim` (0: output rows, 1: input columns). */
function channelScores(criterion: Criterion, w: Tensor, dim: number, name: string): Float64Array {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const rows = (t: Tensor) => (dim === 0 ? t : t.transpose(0, 1)).flatten(1);
      if (criterion === "magnitude") return new Float64Array(rows(w).pow(2).sum(1).toArray());
      const g = w.grad;
      if (!g) throw new Error(`${criterion} importance needs gradients, but ${name} has none: accumulate them first (accumulateGradients)`);
      const wg = rows(w.mul(g));
      // taylor (multivariable): |sum(w * g)|; diff-pruning: sum |w * g|
      return new Float64Array((criterion === "taylor" ? wg.sum(1).abs() : wg.abs().sum(1)).toArray());
    }),
  );
}

export class Importance {
  readonly #weights = new Set<string>();
  readonly #graph: DependencyGraph;

  constructor(
    readonly criterion: Criterion,
    graph: DependencyGraph,
  ) {
    this.#graph = graph;
    for (const l of graph.layers) this.#weights.add(l.weight);
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
      if (!this.#weights.has(m.slot.tensor) || m.slot.dim > 1) continue;
      const scores = channelScores(this.criterion, params.get(m.slot.tensor)!, m.slot.dim, m.slot.tensor);
      m.positions.forEach((p, i) => (total[m.roots[i]!]! += scores[p]!));
      contributors++;
    }
    if (contributors === 0) return total.fill(1);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += total[i]! / contributors / n;
    for (let i = 0; i < n; i++) total[i] = total[i]! / contributors / (mean === 0 ? 1 : mean);
    return total;
  }
}
