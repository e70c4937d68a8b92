// UNet2DModel as diffusers defines it: conv_in -> down blocks (keeping skips) -> mid block ->
// up blocks (concatenating skips) -> GroupNorm -> SiLU -> conv_out, with a sinusoidal time
// embedding added inside every resnet. A class-conditional UNet adds a class embedding to the
// time embedding (class_embed_type / num_class_embeds).
import * as torch from "../torch/index.js";
import type { DType, MemoryFormat, Tensor } from "../torch/index.js";
import { Attention, Conv2d, Embedding, GroupNorm, Module, ModuleList, SiLU } from "../nn/index.js";
import { AttnDownBlock2D, AttnUpBlock2D, DownBlock2D, UNetMidBlock2D, UpBlock2D, type BlockOptions } from "./blocks.js";
import { PRUNED_HEADS_KEY, resolveUNet2DConfig, type UNet2DConfig } from "./config.js";
import { TimestepEmbedding, Timesteps } from "./embeddings.js";
import { loadPretrainedWeights, readConfig, resolveModelFolder, writeModelFolder } from "./checkpoint.js";

export { PRUNED_HEADS_KEY };

export class UNet2DModel extends Module {
  readonly config: UNet2DConfig;
  readonly timeProj: Timesteps;
  readonly timeEmbedding: TimestepEmbedding;
  /**
   * The class embedding, as diffusers 0.17 builds it: a table [num_class_embeds, time_embed_dim]
   * (class_embed_type null, num_class_embeds set), a TimestepEmbedding of the labels' sinusoidal
   * features ("timestep"), the labels themselves ("identity"), or none.
   */
  readonly classEmbedding: Embedding | TimestepEmbedding | "identity" | null;
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ModuleList<UpBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convAct = new SiLU();
  readonly convOut: Conv2d;

  /** A model with freshly initialised weights (seed with torch.manualSeed first). */
  constructor(config: Partial<UNet2DConfig> | UNet2DConfig) {
    super();
    const c = resolveUNet2DConfig(config as Record<string, unknown>);
    this.config = c;
    const channels = c.block_out_channels;
    const timeEmbedDim = channels[0]! * 4;
    const base: Omit<BlockOptions, "numLayers"> = {
      tembChannels: timeEmbedDim,
      groups: c.norm_num_groups,
      eps: c.norm_eps,
      dropout: c.dropout ?? 0,
      outputScaleFactor: 1,
      attentionHeadDim: c.attention_head_dim,
    };

    this.timeProj = new Timesteps(channels[0]!, c.flip_sin_to_cos, c.freq_shift);
    this.timeEmbedding = this.registerModule("time_embedding", new TimestepEmbedding(channels[0]!, timeEmbedDim));
    const classType = c.class_embed_type ?? null;
    this.classEmbedding =
      classType === "timestep" ? this.registerModule("class_embedding", new TimestepEmbedding(channels[0]!, timeEmbedDim))
      : classType === "identity" ? "identity"
      : c.num_class_embeds != null ? this.registerModule("class_embedding", new Embedding(c.num_class_embeds, timeEmbedDim))
      : null;
    this.convIn = this.registerModule("conv_in", new Conv2d(c.in_channels, channels[0]!, 3, { padding: 1 }));

    this.downBlocks = this.registerModule("down_blocks", new ModuleList<DownBlock2D>());
    c.down_block_types.forEach((type, i) => {
      const input = channels[Math.max(0, i - 1)]!;
      const o = { ...base, numLayers: c.layers_per_block, addDownsample: i < channels.length - 1, downsamplePadding: c.downsample_padding };
      this.downBlocks.append(type === "AttnDownBlock2D" ? new AttnDownBlock2D(input, channels[i]!, o) : new DownBlock2D(input, channels[i]!, o));
    });

    const last = channels[channels.length - 1]!;
    this.midBlock = this.registerModule(
      "mid_block",
      new UNetMidBlock2D(last, { ...base, numLayers: 1, outputScaleFactor: c.mid_block_scale_factor, addAttention: c.add_attention }),
    );

    this.upBlocks = this.registerModule("up_blocks", new ModuleList<UpBlock2D>());
    const reversed = [...channels].reverse();
    c.up_block_types.forEach((type, i) => {
      const prev = reversed[Math.max(0, i - 1)]!;
      const out = reversed[i]!;
      const input = reversed[Math.min(i + 1, reversed.length - 1)]!;
      const o = { ...base, numLayers: c.layers_per_block + 1, addUpsample: i < reversed.length - 1 };
      this.upBlocks.append(type === "AttnUpBlock2D" ? new AttnUpBlock2D(input, prev, out, o) : new UpBlock2D(input, prev, out, o));
    });

    this.convNormOut = this.registerModule("conv_norm_out", new GroupNorm(c.norm_num_groups, channels[0]!, { eps: c.norm_eps }));
    this.convOut = this.registerModule("conv_out", new Conv2d(channels[0]!, c.out_channels, 3, { padding: 1 }));
    this.#setHeads(c[PRUNED_HEADS_KEY]);
  }

  #setHeads(raw: unknown): void {
    if (raw === undefined || raw === null) return;
    const modules = new Map(this.namedModules());
    for (const [path, heads] of Object.entries(raw as Record<string, unknown>)) {
      const m = modules.get(path);
      if (!(m instanceof Attention) || !Number.isSafeInteger(heads) || (heads as number) < 1)
        throw new Error(`config.json ${PRUNED_HEADS_KEY}: "${path}": ${String(heads)} is not an attention module's head count`);
      m.heads = heads as number;
    }
  }

  /** The config to save: the original one, plus the heads of head-pruned attention layers. */
  get savedConfig(): UNet2DConfig {
    const pruned = Array.from(this.namedModules()).filter((e): e is [string, Attention] => e[1] instanceof Attention && e[1].heads !== e[1].builtHeads);
    const { [PRUNED_HEADS_KEY]: _, ...rest } = this.config as UNet2DConfig & Record<string, unknown>;
    return (pruned.length > 0 ? { ...rest, [PRUNED_HEADS_KEY]: Object.fromEntries(pruned.map(([n, a]) => [n, a.heads])) } : rest) as UNet2DConfig;
  }

  /**
   * Loads a diffusers model folder or pipeline folder. Layers take the shapes of the checkpoint's
   * tensors, so a pruned checkpoint (narrower layers, same config.json) loads with this same call.
   */
  static fromPretrained(dir: string): UNet2DModel {
    const { modelDir } = resolveModelFolder(dir);
    const config = resolveUNet2DConfig(readConfig(modelDir), `${modelDir}/config.json`);
    const model = torch.noGrad(() => new UNet2DModel(config));
    // a pruned checkpoint's layers must fit together: one small forward proves it
    return loadPretrainedWeights(model, modelDir, () => model.forward(torch.zeros([1, config.in_channels, config.sample_size, config.sample_size]), 0, model.exampleClassLabels(1)));
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (atomically) into `dir`. */
  savePretrained(dir: string): void {
    writeModelFolder(dir, this.savedConfig as unknown as Record<string, unknown>, this.stateDict());
  }

  #memoryFormat: MemoryFormat = "contiguous";

  /** The conv weights' layout, and the activations' in forward (which returns contiguous NCHW). */
  get memoryFormat(): MemoryFormat {
    return this.#memoryFormat;
  }

  override toMemoryFormat(format: MemoryFormat): this {
    super.toMemoryFormat(format);
    this.#memoryFormat = format;
    return this;
  }

  /** The weights' dtype (diffusers' `self.dtype`): float32, or bfloat16 after `to("bfloat16")`; forward runs in it. */
  get dtype(): DType {
    return this.convIn.weight.dtype;
  }

  /**
   * Class labels for a forward at `batch` when the model is class-conditional (zeros: class 0),
   * else undefined: what tracing, counting and load checks pass.
   */
  exampleClassLabels(batch: number): Tensor | undefined {
    const e = this.classEmbedding;
    if (e === null) return undefined;
    if (e === "identity") return torch.zeros([batch, this.timeEmbedding.linear2.outFeatures]);
    return torch.zeros([batch], { dtype: "int64" });
  }

  /**
   * The predicted noise for `sample` [B, C, H, W] at `timestep`: a number, or an int64/float
   * tensor of shape [] or [B]. A class-conditional model needs `classLabels`: a number or an
   * integer tensor of shape [] or [B] (class_embed_type null or "timestep"), or the class
   * embeddings themselves [B, time_embed_dim] ("identity").
   */
  forward(sample: Tensor, timestep: Tensor | number, classLabels?: Tensor | number): Tensor {
    return torch.tidy(() => {
      const batch = sample.shape[0]!;
      const t = perSample(timestep, batch, sample, "timestep");
      let emb = this.timeEmbedding.forward(this.#inDtype(this.timeProj.forward(t)));
      if (this.classEmbedding !== null) emb = emb.add(this.#inDtype(this.#classEmbedding(classLabels, batch, sample)));
      else if (classLabels !== undefined)
        throw new Error("UNet2DModel: class labels were given but this model is not class-conditional (its config has class_embed_type and num_class_embeds null)");

      // after toMemoryFormat("channels_last"), the whole forward in NHWC, chosen once here
      const channelsLast = this.#memoryFormat === "channels_last";
      let x = this.#inDtype(channelsLast ? sample.contiguous("channels_last") : sample);
      x = this.config.center_input_sample ? x.mul(2).sub(1) : x;
      x = this.convIn.forward(x);
      // an input of one channel is NCHW and NHWC at once, and oneDNN then answers in NCHW
      if (channelsLast) x = x.contiguous("channels_last");
      const skips: Tensor[] = [x];
      for (const block of this.downBlocks) {
        const [out, states] = block.forward(x, emb);
        x = out;
        skips.push(...states);
      }
      x = this.midBlock.forward(x, emb);
      for (const block of this.upBlocks) x = block.forward(x, skips, emb);
      const out = this.convOut.forward(this.convAct.forward(this.convNormOut.forward(x)));
      return channelsLast ? out.contiguous() : out;
    });
  }

  /** class_emb of diffusers' forward, [B, time_embed_dim]. */
  #classEmbedding(labels: Tensor | number | undefined, batch: number, sample: Tensor): Tensor {
    const e = this.classEmbedding;
    const type = this.config.class_embed_type ?? null;
    if (labels === undefined)
      throw new Error(`UNet2DModel: this model is class-conditional (${type === null ? `num_class_embeds ${this.config.num_class_embeds}` : `class_embed_type "${type}"`}): give class labels`);
    if (e === "identity") {
      const width = this.timeEmbedding.linear2.outFeatures;
      if (typeof labels === "number" || labels.ndim !== 2 || labels.shape[0] !== batch || labels.shape[1] !== width)
        throw new Error(`UNet2DModel: class_embed_type "identity" takes the class embeddings themselves, [${batch}, ${width}]; got ${typeof labels === "number" ? "a number" : `shape [${labels.shape.join(", ")}]`}`);
      return labels;
    }
    if (e instanceof Embedding) {
      const l = perSample(labels, batch, sample, "class labels", "int64");
      if (l.dtype !== "int64" && l.dtype !== "int32") throw new Error(`UNet2DModel: class labels must be integers (an int64 tensor), got ${l.dtype}`);
      return e.forward(l);
    }
    return e!.forward(this.#inDtype(this.timeProj.forward(perSample(labels, batch, sample, "class labels"))));
  }

  /** `x` in the weights' dtype, as diffusers' t_emb.to(self.dtype): sinusoids and inputs are float32, the weights may be bfloat16. */
  #inDtype(x: Tensor): Tensor {
    const dtype = this.dtype;
    return x.dtype === dtype ? x : x.to(dtype);
  }
}

/** A number, or a tensor of shape [] or [1] or [batch], as one value per sample [batch]. */
function perSample(value: Tensor | number, batch: number, sample: Tensor, what: string, dtype?: "int64"): Tensor {
  let t = typeof value === "number" ? torch.full([batch], value, { device: sample.device, ...(dtype ? { dtype } : {}) }) : value;
  if (t.ndim === 0) t = t.reshape(1);
  if (t.numel === 1 && batch !== 1) t = t.expand(batch);
  if (t.ndim !== 1 || t.shape[0] !== batch) throw new Error(`UNet2DModel: ${what} has shape [${t.shape.join(", ")}] but the batch has ${batch} samples`);
  return t;
}
