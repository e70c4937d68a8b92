// The per-graph scoring context a criterion scores groups in (DESIGN section 5): the graph, the
// importance variant, and which tensors are conv/linear and GroupNorm weights. The criteria
// themselves are in criteria/, their shared group reductions in criterion.ts.
import type { DependencyGraph } from "./graph.js";
import type { PruningGroup } from "./groups.js";
import type { Criterion } from "./criterion.js";
import { asCriterion } from "./criteria/index.js";

/**
 * Which codebase's importance the gradient criteria use. "diffusers" (default): ddpm_prune.py on
 * Torch-Pruning 1.3.7 (criterion.ts's meanReduced). "ddpm-exp": ddpm_exp/prune.py with its own
 * Torch-Pruning copy, where taylor and diff-pruning share one score (criterion.ts's ddpmExpTaylor;
 * the gradient loop also stops before the backward of the step below thr).
 */
export const IMPORTANCE_VARIANTS = ["diffusers", "ddpm-exp"] as const;
export type ImportanceVariant = (typeof IMPORTANCE_VARIANTS)[number];

export function checkImportanceVariant(name: string): ImportanceVariant {
  if (!(IMPORTANCE_VARIANTS as readonly string[]).includes(name)) throw new Error(`unknown importance variant "${name}": use one of ${IMPORTANCE_VARIANTS.join(", ")}`);
  return name as ImportanceVariant;
}

export class Importance {
  readonly criterion: Criterion;
  /** The weights of the graph's conv/linear layers. */
  readonly layerWeights: ReadonlySet<string>;
  /** The graph's GroupNorm affine weights (scored by ddpm-exp's Taylor score only). */
  readonly normWeights: ReadonlySet<string>;

  constructor(
    criterion: Criterion | string,
    readonly graph: DependencyGraph,
    readonly variant: ImportanceVariant = "diffusers",
  ) {
    this.criterion = asCriterion(criterion);
    this.layerWeights = new Set(graph.layers.map((l) => l.weight));
    this.normWeights = new Set(graph.norms.map((n) => `${n.name}.weight`));
  }

  /**
   * One score per root channel of `group`, from the weights as they are now (Torch-Pruning scores
   * each group after the groups before it were pruned); higher means more important.
   */
  of(group: PruningGroup): Float64Array {
    return this.criterion.score(group, this);
  }
}
