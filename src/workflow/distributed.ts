// Sharing a batch of samples among the processes of a torch.distributed group: each takes its
// contiguous share of the rows (the initial noise, the labels) and the results are gathered back
// in order, so that rank 0 holds what one process would have made.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export { inGroup, isMainProcess } from "../torch/distributed.js";
const { inGroup } = torch.distributed;

/** This rank's rows [start, start + count) of `n` (all of them outside a group). */
export function myRows(n: number): { start: number; count: number } {
  return inGroup() ? torch.distributed.shardRange(n) : { start: 0, count: n };
}

/** This rank's share of `x`'s rows (a view; `x` itself outside a group). */
export function shardRows(x: Tensor): Tensor {
  const { start, count } = myRows(x.shape[0]!);
  return inGroup() ? x.narrow(0, start, count) : x;
}

/** This rank's share of a per-row list. */
export function shardList<T>(xs: readonly T[]): T[] {
  const { start, count } = myRows(xs.length);
  return xs.slice(start, start + count);
}

/**
 * The full batch of `n` rows from every rank's share (`local`, made by shardRows' split), on
 * every rank. Shares differ by at most one row; they travel padded to the largest.
 */
export function gatherRows(local: Tensor, n: number): Tensor {
  if (!inGroup()) return local.clone();
  const dist = torch.distributed;
  const world = dist.getWorldSize();
  const largest = Math.ceil(n / world);
  return torch.tidy(() => {
    const padded = local.shape[0] === largest ? local : torch.cat([local, torch.zeros([largest - local.shape[0]!, ...local.shape.slice(1)], { dtype: local.dtype })], 0);
    const parts = dist.allGather(padded.contiguous());
    return torch.cat(parts.map((p, r) => p.narrow(0, 0, dist.shardRange(n, r, world).count)), 0);
  });
}
