// Small models for the pruning tests (not UNets), and hand-made edits of their weights.
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Conv2d, Linear, Module, SiLU } from "../../src/nn/index.js";

/** fc1 (5 -> 7) -> SiLU -> fc2 (7 -> 3). */
export class MLP extends Module {
  readonly fc1 = this.registerModule("fc1", new Linear(5, 7));
  readonly act = new SiLU();
  readonly fc2 = this.registerModule("fc2", new Linear(7, 3));

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

/**
 * A norm-free conv net with a residual add and a skip concat:
 *   a = conv1(x);  r = a + conv2(silu(a));  c = conv3(silu(r))
 *   out = head(silu(conv4(silu(cat([r, c], 1)))))
 * Groups: the residual {conv1, conv2} (8 channels, conv4's input columns 0..7), conv3 (6 channels,
 * conv4's input columns 8..13), conv4 (10 channels); head's output is the model's.
 */
export class SkipNet extends Module {
  readonly conv1 = this.registerModule("conv1", new Conv2d(3, 8, 3, { padding: 1 }));
  readonly conv2 = this.registerModule("conv2", new Conv2d(8, 8, 3, { padding: 1 }));
  readonly conv3 = this.registerModule("conv3", new Conv2d(8, 6, 3, { padding: 1 }));
  readonly conv4 = this.registerModule("conv4", new Conv2d(14, 10, 1));
  readonly head = this.registerModule("head", new Conv2d(10, 2, 3, { padding: 1 }));

  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const a = this.conv1.forward(x);
      const r = a.add(this.conv2.forward(a.silu()));
      const c = this.conv3.forward(r.silu());
      const d = this.conv4.forward(torch.cat([r, c], 1).silu());
      return this.head.forward(d.silu());
    });
  }
}

/** Sets the entries at `indices` along `dim` of the model's tensor `name` to zero, in place. */
export function zeroAt(model: Module, name: string, dim: number, indices: readonly number[]): void {
  const t = model.stateDict().get(name);
  if (!t) throw new Error(`no tensor ${name}`);
  torch.noGrad(() =>
    torch.tidy(() => {
      const mask = new Array<number>(t.shape[dim]!).fill(1);
      for (const i of indices) mask[i] = 0;
      const shape = t.shape.map((_, d) => (d === dim ? t.shape[dim]! : 1));
      t.mul_(torch.tensor(mask).reshape(shape));
    }),
  );
}

/** Indices 0..n-1 without `removed`. */
export const keptIndices = (n: number, removed: readonly number[]): number[] => Array.from({ length: n }, (_, i) => i).filter((i) => !removed.includes(i));

/** Copies of every tensor of the model (detached), by name. */
export function snapshot(model: Module): Map<string, Tensor> {
  return torch.noGrad(() => new Map(Array.from(model.stateDict(), ([k, t]) => [k, torch.keep(t.detach().clone())])));
}

/** `t` with only the entries `keep` along `dim`. */
export const narrowed = (t: Tensor, dim: number, keep: readonly number[]): Tensor =>
  torch.noGrad(() => t.indexSelect(dim, torch.tensor([...keep], { dtype: "int64" })));
