// The spatial self-attention block of diffusers' UNet2DModel (Attention with group norm, a
// residual connection and the output rescale). Checkpoint names: group_norm, to_q, to_k, to_v,
// to_out.0 (older checkpoints say query, key, value, proj_attn; the model loader renames them).
// The same arithmetic as diffusers' AttnProcessor, laid out channels-first (see #project).
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Linear } from "./linear.js";
import { Module, ModuleList } from "./module.js";
import { GroupNorm } from "./norm.js";

export interface AttentionOptions {
  /** Number of heads; 1 for single-head attention (attention_head_dim null). */
  heads: number;
  /** Channels per head when built; fixes the softmax scale for good (pruning keeps it). */
  dimHead: number;
  normNumGroups: number;
  eps: number;
  rescaleOutputFactor?: number;
}

export class Attention extends Module {
  /** Heads as built from the config; whole-head pruning lowers `heads`. */
  readonly builtHeads: number;
  heads: number;
  /** 1/sqrt(original head dim): fixed at construction so pruned and unpruned agree. */
  readonly scale: number;
  readonly rescaleOutputFactor: number;
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;

  constructor(channels: number, options: AttentionOptions) {
    super();
    const { heads, dimHead, normNumGroups, eps, rescaleOutputFactor = 1 } = options;
    this.heads = heads;
    this.builtHeads = heads;
    this.scale = 1 / Math.sqrt(dimHead);
    this.rescaleOutputFactor = rescaleOutputFactor;
    const inner = heads * dimHead;
    this.groupNorm = this.registerModule("group_norm", new GroupNorm(normNumGroups, channels, { eps }));
    this.toQ = this.registerModule("to_q", new Linear(channels, inner));
    this.toK = this.registerModule("to_k", new Linear(channels, inner));
    this.toV = this.registerModule("to_v", new Linear(channels, inner));
    this.toOut = this.registerModule("to_out", new ModuleList([new Linear(inner, channels)]));
  }

  /** [B*heads, L, d] from [B, L, heads*d]. */
  #headsToBatch(x: Tensor): Tensor {
    const [b, l, inner] = x.shape as [number, number, number];
    const d = inner / this.heads;
    return x.reshape(b, l, this.heads, d).permute(0, 2, 1, 3).reshape(b * this.heads, l, d);
  }

  #batchToHeads(x: Tensor): Tensor {
    const [bh, l, d] = x.shape as [number, number, number];
    const b = bh / this.heads;
    return x.reshape(b, this.heads, l, d).permute(0, 2, 1, 3).reshape(b, l, this.heads * d);
  }

  /**
   * diffusers' op sequence on [B, HW, C] tokens. Traced (the dependency graph, the MAC count, ONNX
   * export), the block runs this one: Torch-Pruning orders its groups by the autograd graph of
   * diffusers' ops, and pruning must find the same order.
   */
  #tokensForward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const tokens = this.groupNorm.forward(x).reshape(b, c, h * w).transpose(1, 2); // [B, HW, C]
    const q = this.#headsToBatch(this.toQ.forward(tokens));
    const k = this.#headsToBatch(this.toK.forward(tokens));
    const v = this.#headsToBatch(this.toV.forward(tokens));
    const scores = q.bmm(k.transpose(1, 2)).mul(this.scale);
    const attended = this.#batchToHeads(scores.softmax(-1).bmm(v));
    const out = this.toOut.at(0).forward(attended).transpose(1, 2).reshape(b, c, h, w);
    return this.#rescale(out.add(x));
  }

  forward(x: Tensor): Tensor {
    // its own scope: the scores and projections are freed when the block returns
    return torch.tidy(() => (torch.isObserving() ? this.#tokensForward(x) : this.#channelsForward(x)));
  }

  /**
   * A projection of x [B, C, H, W] as [B*heads, d, HW]. Projections run on the channels (a 1x1
   * convolution in x's layout) instead of diffusers' [B, HW, C] tokens: no transposes, and oneDNN
   * instead of a matmul on a transposed view.
   */
  #project(x: Tensor, layer: Linear): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    // [B, heads*d, HW] viewed as [B*heads, d, HW]: heads then head dim, as diffusers splits the features
    return torch.conv1x1(x, layer.weight, layer.bias).reshape(b * this.heads, -1, h * w);
  }

  /** The same arithmetic channels-first: what runs when nothing is traced. */
  #channelsForward(x: Tensor): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    const hidden = this.groupNorm.forward(x);
    const [q, k, v] = [this.toQ, this.toK, this.toV].map((layer) => this.#project(hidden, layer)) as [Tensor, Tensor, Tensor];
    // scores[i, j] = scale * q_i . k_j, the scale applied inside the matmul (beta 0 ignores the input)
    const scores = torch.baddbmm(torch.zeros([1, 1, 1], { dtype: q.dtype, device: q.device }), q.transpose(1, 2), k, { beta: 0, alpha: this.scale });
    const probs = scores.softmax(-1);
    // out[:, c, i] = sum_j v[:, c, j] probs[:, i, j]. On channels_last input it is computed token
    // by token, probs @ v^T [B*heads, HW, d], and laid out [B, H, W, heads*d]: NHWC without a copy
    // for one head (one copy for several), so the layers after keep the layout.
    const attended = x.isContiguous("channels_last")
      ? probs.bmm(v.transpose(1, 2)).reshape(b, this.heads, h * w, -1).permute(0, 2, 1, 3).reshape(b, h, w, -1).permute(0, 3, 1, 2)
      : v.bmm(probs.transpose(1, 2)).reshape(b, -1, h, w);
    return this.#rescale(torch.conv1x1(attended, this.toOut.at(0).weight, this.toOut.at(0).bias).add(x));
  }

  #rescale(residual: Tensor): Tensor {
    return this.rescaleOutputFactor === 1 ? residual : residual.div(this.rescaleOutputFactor);
  }
}
