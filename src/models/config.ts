// UNet2DModel's config.json: diffusers' keys and defaults, validated with errors that say what
// is wrong. Unknown keys are kept so a saved config round-trips.
import { whyTooLarge } from "./size.js";

/**
 * config.json key of a head-pruned model: attention module path -> heads left. Weights alone
 * cannot tell 4 heads of 12 channels from 3 heads of 16, so the loader reads it here.
 */
export const PRUNED_HEADS_KEY = "_pruned_attention_heads";

export type DownBlockType = "DownBlock2D" | "AttnDownBlock2D";
export type UpBlockType = "UpBlock2D" | "AttnUpBlock2D";
export type ClassEmbedType = "timestep" | "identity";
const CLASS_EMBED_TYPES: readonly ClassEmbedType[] = ["timestep", "identity"];

export interface UNet2DConfig {
  _class_name: "UNet2DModel";
  sample_size: number;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  time_embedding_type: "positional";
  freq_shift: number;
  flip_sin_to_cos: boolean;
  down_block_types: DownBlockType[];
  up_block_types: UpBlockType[];
  block_out_channels: number[];
  layers_per_block: number;
  mid_block_scale_factor: number;
  downsample_padding: number;
  act_fn: string;
  attention_head_dim: number | null;
  norm_num_groups: number;
  norm_eps: number;
  resnet_time_scale_shift: "default";
  add_attention: boolean;
  /** Dropout in the resnets (diffusers' UNet2DModel has none; the DDPM paper used 0.1). */
  dropout?: number;
  /**
   * How class labels are embedded (diffusers 0.17): null with num_class_embeds set for a table of
   * learned rows, "timestep" for sinusoidal features and an MLP, "identity" for labels given as
   * embeddings. Absent or null with num_class_embeds absent or null: not class-conditional.
   */
  class_embed_type?: ClassEmbedType | null;
  num_class_embeds?: number | null;
  [key: string]: unknown;
}

/** diffusers 0.17's UNet2DModel defaults for absent keys. */
export const UNET2D_DEFAULTS: Omit<UNet2DConfig, "_class_name"> = {
  sample_size: 32,
  in_channels: 3,
  out_channels: 3,
  center_input_sample: false,
  time_embedding_type: "positional",
  freq_shift: 0,
  flip_sin_to_cos: true,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
  up_block_types: ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
  block_out_channels: [224, 448, 672, 896],
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  downsample_padding: 1,
  act_fn: "silu",
  attention_head_dim: 8,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  resnet_time_scale_shift: "default",
  add_attention: true,
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

const DOWN_BLOCKS: readonly DownBlockType[] = ["DownBlock2D", "AttnDownBlock2D"];
const UP_BLOCKS: readonly UpBlockType[] = ["UpBlock2D", "AttnUpBlock2D"];
/** act_fn names of the one activation the blocks implement (diffusers says "silu" or "swish"). */
export const ACTIVATIONS = ["silu", "swish"];

export const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
export const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
/** A config value as JSON, shortened for error messages. */
export const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};
/** 2^k as a number while it is exact, else as "2^k". */
const powerOfTwo = (k: number): string => (k <= 53 ? String(2 ** k) : `2^${k}`);

/** Fills defaults and checks a parsed config.json; `source` names the file in errors. */
export function resolveUNet2DConfig(raw: Record<string, unknown>, source = "config.json"): UNet2DConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`expected a JSON object, got ${show(raw)}`);
  if (raw._class_name !== undefined && raw._class_name !== "UNet2DModel")
    fail(`_class_name is ${show(raw._class_name)}, but only UNet2DModel is supported`);
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const c = { ...UNET2D_DEFAULTS, ...defined, _class_name: "UNet2DModel" } as UNet2DConfig;
  // diffusers treats null for these as "use the default"
  if (raw.norm_num_groups === null) fail("norm_num_groups null is not supported; give the number of groups (diffusers' default is 32)");
  for (const key of ["sample_size", "in_channels", "out_channels", "layers_per_block", "norm_num_groups"] as const)
    if (!isPositiveInt(c[key])) fail(`${key} must be a positive integer, got ${show(c[key])}`);
  checkBlocks(c, fail);
  checkAttention(c, fail);
  checkScalars(c, raw, fail);
  const downsamplers = c.block_out_channels.length - 1;
  if (c.sample_size % 2 ** downsamplers !== 0)
    fail(`sample_size ${c.sample_size} does not halve evenly through the ${downsamplers} downsampler${downsamplers === 1 ? "" : "s"} of its ${c.block_out_channels.length} blocks (the up path could not meet the skips); use a multiple of ${powerOfTwo(downsamplers)}`);
  const tooLarge = whyTooLarge(c);
  if (tooLarge) fail(tooLarge);
  return c;
}

type Fail = (msg: string) => never;

/** block_out_channels, down_block_types and up_block_types: one entry per resolution, of known types. */
function checkBlocks(c: UNet2DConfig, fail: Fail): void {
  const channels = c.block_out_channels as unknown;
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every(isPositiveInt))
    fail(`block_out_channels must be a non-empty list of positive integers, got ${show(channels)}`);
  const n = c.block_out_channels.length;
  for (const [key, allowed] of [["down_block_types", DOWN_BLOCKS], ["up_block_types", UP_BLOCKS]] as const) {
    const types = c[key] as unknown;
    if (!Array.isArray(types)) fail(`${key} must be a list of block names (${allowed.join(", ")}), got ${show(types)}`);
    const list = types as unknown[];
    if (list.length !== n) fail(`block_out_channels has ${n} entries but ${key} has ${list.length}; give one block per entry`);
    list.forEach((t, i) => {
      if (!(allowed as readonly unknown[]).includes(t)) fail(`${key}[${i}] ${show(t)} is not supported (${allowed.join(", ")})`);
    });
  }
  for (const ch of c.block_out_channels)
    if (ch % c.norm_num_groups !== 0) fail(`block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}; GroupNorm splits each block's channels into that many groups`);
}

/** attention_head_dim must split every attention layer's channels into whole heads. */
function checkAttention(c: UNet2DConfig, fail: Fail): void {
  if (typeof c.add_attention !== "boolean") fail(`add_attention must be true or false, got ${show(c.add_attention)}`);
  const dim = c.attention_head_dim;
  if (dim === null) return;
  if (!isPositiveInt(dim)) fail(`attention_head_dim must be a positive integer or null (one head over all channels), got ${show(dim)}`);
  const n = c.block_out_channels.length;
  const attending = c.block_out_channels.filter(
    (_, i) => c.down_block_types[i] === "AttnDownBlock2D" || c.up_block_types[n - 1 - i] === "AttnUpBlock2D" || (i === n - 1 && c.add_attention),
  );
  for (const ch of attending)
    if (ch % dim !== 0)
      fail(`attention_head_dim ${dim} does not divide the ${ch} channels of an attention block; use a divisor of ${ch} (channels per head), or null for one head`);
}

/** class_embed_type and num_class_embeds: diffusers 0.17's combinations. */
function checkClassEmbedding(c: UNet2DConfig, fail: Fail): void {
  const type = c.class_embed_type ?? null;
  if (type !== null && !(CLASS_EMBED_TYPES as readonly unknown[]).includes(type))
    fail(`class_embed_type ${show(type)} is not supported by UNet2DModel (null with num_class_embeds for a table of class embeddings, "timestep" or "identity")`);
  const n = c.num_class_embeds ?? null;
  if (n !== null && !isPositiveInt(n)) fail(`num_class_embeds must be a positive integer (the number of classes) or null, got ${show(n)}`);
}

/** The scalar keys: types, ranges, and what the blocks implement. */
function checkScalars(c: UNet2DConfig, raw: Record<string, unknown>, fail: Fail): void {
  for (const key of ["center_input_sample", "flip_sin_to_cos"] as const)
    if (typeof c[key] !== "boolean") fail(`${key} must be true or false, got ${show(c[key])}`);
  const half = Math.floor(c.block_out_channels[0]! / 2);
  if (!isFiniteNumber(c.freq_shift) || c.freq_shift >= half)
    fail(`freq_shift must be a number below half of block_out_channels[0] (${half}), usually 0 or 1; got ${show(c.freq_shift)}`);
  if (!isFiniteNumber(c.mid_block_scale_factor) || c.mid_block_scale_factor <= 0)
    fail(`mid_block_scale_factor must be a positive number (usually 1), got ${show(c.mid_block_scale_factor)}`);
  if (c.downsample_padding !== 0 && c.downsample_padding !== 1)
    fail(`downsample_padding must be 0 or 1 (halving each resolution), got ${show(c.downsample_padding)}`);
  if (!ACTIVATIONS.includes(c.act_fn))
    fail(`act_fn ${show(c.act_fn)} is not implemented (only "silu", also called "swish"); a model trained with another activation would run with the wrong one`);
  if (!isFiniteNumber(c.norm_eps) || c.norm_eps <= 0) fail(`norm_eps must be a positive number (e.g. 1e-5), got ${show(c.norm_eps)}`);
  if (c.dropout !== undefined && !(isFiniteNumber(c.dropout) && c.dropout >= 0 && c.dropout < 1)) fail(`dropout must be a number in [0, 1), got ${show(c.dropout)}`);
  if (c.time_embedding_type !== "positional") fail(`time_embedding_type ${show(c.time_embedding_type)} is not supported (positional)`);
  if (c.resnet_time_scale_shift !== "default") fail(`resnet_time_scale_shift ${show(c.resnet_time_scale_shift)} is not supported (default)`);
  checkClassEmbedding(c, fail);
  const heads = raw[PRUNED_HEADS_KEY];
  if (heads != null && (typeof heads !== "object" || Array.isArray(heads)))
    fail(`${PRUNED_HEADS_KEY} must be an object of attention module paths and head counts, got ${show(heads)}`);
}
