// The registry of pruning criteria. A new criterion is one file here and one entry below.
import type { Criterion } from "../criterion.js";
import { diffPruning } from "./diff-pruning.js";
import { magnitude } from "./magnitude.js";
import { random } from "./random.js";
import { reinit } from "./reinit.js";
import { taylor } from "./taylor.js";

export const CRITERIA: readonly Criterion[] = [diffPruning, taylor, magnitude, random, reinit];

export function criterionNamed(name: string): Criterion {
  const found = CRITERIA.find((c) => c.name === name);
  if (!found) throw new Error(`unknown pruning criterion "${name}": use one of ${CRITERIA.map((c) => c.name).join(", ")}`);
  return found;
}

/** A criterion given by name or as the object itself. */
export const asCriterion = (criterion: Criterion | string): Criterion => (typeof criterion === "string" ? criterionNamed(criterion) : criterion);
