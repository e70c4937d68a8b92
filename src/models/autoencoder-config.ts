// config.json of the autoencoders (VQModel, AutoencoderKL): diffusers 0.17's keys and defaults,
// validated with errors that name the file and the key. Unknown keys are kept so a saved config
// round-trips.
import { totalmem } from "node:os";
import { ACTIVATIONS, ConfigError, isFiniteNumber, isPositiveInt, show } from "./config.js";
import { formatBytes } from "./size.js";

export type DownEncoderBlockType = "DownEncoderBlock2D";
export type UpDecoderBlockType = "UpDecoderBlock2D";

/** The keys the Encoder and Decoder are built from (both autoencoders). */
export interface AutoencoderConfig {
  _class_name: "VQModel" | "AutoencoderKL";
  in_channels: number;
  out_channels: number;
  down_block_types: DownEncoderBlockType[];
  up_block_types: UpDecoderBlockType[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  /** The image size the model was trained at (diffusers uses it only for tiling). */
  sample_size: number;
  norm_num_groups: number;
  /** Latents are multiplied by it before the UNet sees them (and divided before decoding). */
  scaling_factor: number;
  [key: string]: unknown;
}

export interface VQModelConfig extends AutoencoderConfig {
  _class_name: "VQModel";
  num_vq_embeddings: number;
  /** Width of the codebook vectors; null means latent_channels. */
  vq_embed_dim: number | null;
}

export interface AutoencoderKLConfig extends AutoencoderConfig {
  _class_name: "AutoencoderKL";
}

const COMMON_DEFAULTS: Omit<AutoencoderConfig, "_class_name" | "latent_channels"> = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ["DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D"],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: "silu",
  sample_size: 32,
  norm_num_groups: 32,
  scaling_factor: 0.18215,
};

/** diffusers 0.17's VQModel defaults for absent keys. */
export const VQ_MODEL_DEFAULTS: Omit<VQModelConfig, "_class_name"> = {
  ...COMMON_DEFAULTS,
  latent_channels: 3,
  num_vq_embeddings: 256,
  vq_embed_dim: null,
};

/** diffusers 0.17's AutoencoderKL defaults for absent keys. */
export const AUTOENCODER_KL_DEFAULTS: Omit<AutoencoderKLConfig, "_class_name"> = {
  ...COMMON_DEFAULTS,
  latent_channels: 4,
};

type Fail = (msg: string) => never;

/** Fills defaults and checks a parsed VQModel config.json; `source` names the file in errors. */
export function resolveVQModelConfig(raw: Record<string, unknown>, source = "config.json"): VQModelConfig {
  const fail = failIn(source);
  const c = withDefaults(raw, "VQModel", VQ_MODEL_DEFAULTS, fail) as VQModelConfig;
  if (!isPositiveInt(c.num_vq_embeddings)) fail(`num_vq_embeddings (the codebook size) must be a positive integer, got ${show(c.num_vq_embeddings)}`);
  if (c.vq_embed_dim !== null && !isPositiveInt(c.vq_embed_dim))
    fail(`vq_embed_dim must be a positive integer or null (the codebook vectors then have latent_channels entries), got ${show(c.vq_embed_dim)}`);
  checkCommon(c, fail);
  const codebook = c.num_vq_embeddings * (c.vq_embed_dim ?? c.latent_channels);
  checkSize(c, codebook, fail);
  return c;
}

/** Fills defaults and checks a parsed AutoencoderKL config.json; `source` names the file in errors. */
export function resolveAutoencoderKLConfig(raw: Record<string, unknown>, source = "config.json"): AutoencoderKLConfig {
  const fail = failIn(source);
  const c = withDefaults(raw, "AutoencoderKL", AUTOENCODER_KL_DEFAULTS, fail) as AutoencoderKLConfig;
  checkCommon(c, fail);
  checkSize(c, 0, fail);
  return c;
}

const failIn =
  (source: string): Fail =>
  (msg) => {
    throw new ConfigError(`${source}: ${msg}`);
  };

function withDefaults(raw: Record<string, unknown>, className: AutoencoderConfig["_class_name"], defaults: object, fail: Fail): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`expected a JSON object, got ${show(raw)}`);
  if (raw._class_name !== undefined && raw._class_name !== className) fail(`_class_name is ${show(raw._class_name)} where ${className} was expected`);
  if (raw.norm_num_groups === null) fail("norm_num_groups null is not supported; give the number of groups (diffusers' default is 32)");
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  return { ...defaults, ...defined, _class_name: className };
}

function checkCommon(c: AutoencoderConfig, fail: Fail): void {
  for (const key of ["in_channels", "out_channels", "layers_per_block", "latent_channels", "sample_size", "norm_num_groups"] as const)
    if (!isPositiveInt(c[key])) fail(`${key} must be a positive integer, got ${show(c[key])}`);
  const channels = c.block_out_channels as unknown;
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every(isPositiveInt))
    fail(`block_out_channels must be a non-empty list of positive integers, got ${show(channels)}`);
  const n = c.block_out_channels.length;
  for (const [key, allowed] of [["down_block_types", "DownEncoderBlock2D"], ["up_block_types", "UpDecoderBlock2D"]] as const) {
    const types = c[key] as unknown;
    if (!Array.isArray(types)) fail(`${key} must be a list of block names (${allowed}), got ${show(types)}`);
    const list = types as unknown[];
    if (list.length !== n) fail(`block_out_channels has ${n} entries but ${key} has ${list.length}; give one block per entry`);
    list.forEach((t, i) => {
      if (t !== allowed) fail(`${key}[${i}] ${show(t)} is not supported (${allowed}; the attention variants are not implemented)`);
    });
  }
  for (const ch of c.block_out_channels)
    if (ch % c.norm_num_groups !== 0) fail(`block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}; GroupNorm splits each block's channels into that many groups`);
  if (!ACTIVATIONS.includes(c.act_fn))
    fail(`act_fn ${show(c.act_fn)} is not implemented (only "silu", also called "swish"); a model trained with another activation would run with the wrong one`);
  if (!isFiniteNumber(c.scaling_factor) || c.scaling_factor <= 0) fail(`scaling_factor must be a positive number (e.g. 0.18215), got ${show(c.scaling_factor)}`);
}

const conv = (i: number, o: number, k: number): number => i * o * k * k + o;
const resnet = (i: number, o: number): number => 2 * i + conv(i, o, 3) + 2 * o + conv(o, o, 3) + (i !== o ? conv(i, o, 1) : 0);

/** Refuses a config whose float32 weights alone exceed this machine's memory (before building anything). */
function checkSize(c: AutoencoderConfig, extra: number, fail: Fail): void {
  const ch = c.block_out_channels;
  const L = c.layers_per_block;
  const last = ch[ch.length - 1]!;
  const mid = 2 * resnet(last, last) + 2 * last + 4 * (last * last + last);
  let params = extra + 2 * mid;
  ch.forEach((out, i) => {
    const input = ch[Math.max(0, i - 1)]!;
    params += resnet(input, out) + (L - 1) * resnet(out, out) + (i < ch.length - 1 ? conv(out, out, 3) : 0);
  });
  [...ch].reverse().forEach((out, i, rev) => {
    const input = rev[Math.max(0, i - 1)]!;
    params += resnet(input, out) + L * resnet(out, out) + (i < ch.length - 1 ? conv(out, out, 3) : 0);
  });
  const bytes = 4 * params;
  if (bytes > totalmem())
    fail(`this config makes an autoencoder of about ${params.toExponential(2)} parameters (${formatBytes(bytes)} of float32 weights), more than this machine's ${formatBytes(totalmem())} of memory; layers_per_block (${L}) and block_out_channels set the size`);
}
