// Embedding: a lookup table of rows, as torch.nn.Embedding (weight [num, dim], initialised N(0, 1)).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class Embedding extends Module {
  constructor(numEmbeddings: number, embeddingDim: number) {
    super();
    this.registerParameter("weight", torch.randn([numEmbeddings, embeddingDim]));
  }

  get weight(): Tensor {
    return this.param("weight");
  }
  get numEmbeddings(): number {
    return this.weight.shape[0]!;
  }
  /** Follows the weight, so a pruned table keeps working. */
  get embeddingDim(): number {
    return this.weight.shape[1]!;
  }

  /** Rows of the table at integer `indices` of any shape: [...indices.shape, dim]. */
  forward(indices: Tensor): Tensor {
    if (indices.dtype !== "int64" && indices.dtype !== "int32")
      throw new TypeError(`Embedding: indices must be an integer tensor (int64), got ${indices.dtype}`);
    return torch.tidy(() => {
      const flat = indices.reshape(-1);
      if (flat.numel > 0) {
        const [lo, hi] = [flat.min().item(), flat.max().item()];
        if (lo < 0 || hi >= this.numEmbeddings)
          throw new RangeError(`Embedding: index ${lo < 0 ? lo : hi} is out of range for a table of ${this.numEmbeddings} rows`);
      }
      return this.weight.indexSelect(0, flat).reshape(...indices.shape, this.embeddingDim);
    });
  }
}
