// UNet2DModel's config.json: diffusers' keys and defaults, validated with errors that say what
// is wrong. Unknown keys are kept so a saved config round-trips.

export type DownBlockType = "DownBlock2D" | "AttnDownBlock2D";
export type UpBlockType = "UpBlock2D" | "AttnUpBlock2D";

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

const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

/** Fills defaults and checks a parsed config.json; `source` names the file in errors. */
export function resolveUNet2DConfig(raw: Record<string, unknown>, source = "config.json"): UNet2DConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("expected a JSON object");
  if (raw._class_name !== undefined && raw._class_name !== "UNet2DModel")
    fail(`_class_name is "${String(raw._class_name)}", but only UNet2DModel is supported`);
  const defined = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
  const c = { ...UNET2D_DEFAULTS, ...defined, _class_name: "UNet2DModel" } as UNet2DConfig;
  // diffusers treats null for these as "use the default"
  if (raw.norm_num_groups === null) fail("norm_num_groups null is not supported");
  for (const key of ["sample_size", "in_channels", "out_channels", "layers_per_block", "norm_num_groups"] as const)
    if (!isPositiveInt(c[key])) fail(`${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
  if (!Array.isArray(c.block_out_channels) || !c.block_out_channels.every(isPositiveInt))
    fail(`block_out_channels must be a list of positive integers, got ${JSON.stringify(c.block_out_channels)}`);
  const n = c.block_out_channels.length;
  if (!Array.isArray(c.down_block_types) || c.down_block_types.length !== n)
    fail(`block_out_channels has ${n} entries but down_block_types has ${Array.isArray(c.down_block_types) ? c.down_block_types.length : "none"}`);
  if (!Array.isArray(c.up_block_types) || c.up_block_types.length !== n)
    fail(`block_out_channels has ${n} entries but up_block_types has ${Array.isArray(c.up_block_types) ? c.up_block_types.length : "none"}`);
  for (const t of c.down_block_types)
    if (t !== "DownBlock2D" && t !== "AttnDownBlock2D") fail(`down block type "${t}" is not supported (DownBlock2D, AttnDownBlock2D)`);
  for (const t of c.up_block_types)
    if (t !== "UpBlock2D" && t !== "AttnUpBlock2D") fail(`up block type "${t}" is not supported (UpBlock2D, AttnUpBlock2D)`);
  for (const ch of c.block_out_channels)
    if (ch % c.norm_num_groups !== 0) fail(`block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}`);
  if (c.attention_head_dim !== null && !isPositiveInt(c.attention_head_dim))
    fail(`attention_head_dim must be a positive integer or null, got ${JSON.stringify(c.attention_head_dim)}`);
  if (c.time_embedding_type !== "positional") fail(`time_embedding_type "${c.time_embedding_type}" is not supported (positional)`);
  if (c.resnet_time_scale_shift !== "default") fail(`resnet_time_scale_shift "${c.resnet_time_scale_shift}" is not supported (default)`);
  if (raw.class_embed_type != null || raw.num_class_embeds != null) fail("class-conditional UNets (class_embed_type, num_class_embeds) are not supported");
  if (typeof c.norm_eps !== "number" || !(c.norm_eps > 0)) fail(`norm_eps must be a positive number`);
  if (c.dropout !== undefined && !(typeof c.dropout === "number" && c.dropout >= 0 && c.dropout < 1)) fail("dropout must be in [0, 1)");
  return c;
}
