// What a UNet2DModel config costs before anything is allocated: its parameter count in closed
// form (the same layers unet2d.ts builds, counted, not made) and the memory of its float32
// weights plus one forward pass at batch 1. A config that cannot fit is refused from these.
import { totalmem } from "node:os";

/** The config keys the size depends on (already checked for types and ranges). */
export interface SizeConfig {
  sample_size: number;
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  layers_per_block: number;
  attention_head_dim: number | null;
  add_attention: boolean;
}

export interface UNetSize {
  /** Parameters, exactly as the model built from this config has them (a double: may be huge). */
  params: number;
  /** Bytes of the float32 weights. */
  weightBytes: number;
  /** A rough peak of one forward pass at batch 1: the skip states it keeps and its largest layer's work. */
  forwardBytes: number;
}

const conv = (i: number, o: number, k: number): number => i * o * k * k + o;
const linear = (i: number, o: number): number => i * o + o;
const norm = (c: number): number => 2 * c;

function resnet(i: number, o: number, temb: number): number {
  return norm(i) + conv(i, o, 3) + linear(temb, o) + norm(o) + conv(o, o, 3) + (i !== o ? conv(i, o, 1) : 0);
}

function attention(c: number, headDim: number | null): number {
  const inner = headDim === null ? c : Math.floor(c / headDim) * headDim;
  return norm(c) + 3 * linear(c, inner) + linear(inner, c);
}

/** Parameters of the UNet2DModel `c` describes, in closed form (layers_per_block may be 1e7). */
export function countParams(c: SizeConfig): number {
  const ch = c.block_out_channels;
  const n = ch.length;
  const L = c.layers_per_block;
  const temb = ch[0]! * 4;
  let params = linear(ch[0]!, temb) + linear(temb, temb) + conv(c.in_channels, ch[0]!, 3);
  ch.forEach((out, i) => {
    const input = ch[Math.max(0, i - 1)]!;
    params += resnet(input, out, temb) + (L - 1) * resnet(out, out, temb);
    if (c.down_block_types[i] === "AttnDownBlock2D") params += L * attention(out, c.attention_head_dim);
    if (i < n - 1) params += conv(out, out, 3);
  });
  const last = ch[n - 1]!;
  params += 2 * resnet(last, last, temb) + (c.add_attention ? attention(last, c.attention_head_dim) : 0);
  const reversed = [...ch].reverse();
  reversed.forEach((out, i) => {
    const prev = reversed[Math.max(0, i - 1)]!;
    const input = reversed[Math.min(i + 1, n - 1)]!;
    // L + 1 resnets, each taking a skip: the first prev + out, the middle ones out + out, the last out + input.
    params += resnet(prev + out, out, temb) + (L - 1) * resnet(2 * out, out, temb) + resnet(out + input, out, temb);
    if (c.up_block_types[i] === "AttnUpBlock2D") params += (L + 1) * attention(out, c.attention_head_dim);
    if (i < n - 1) params += conv(out, out, 3);
  });
  return params + norm(ch[0]!) + conv(ch[0]!, c.out_channels, 3);
}

/** Elements of the largest tensors one forward pass at batch 1 holds at once (a rough peak). */
function forwardElements(c: SizeConfig): number {
  const ch = c.block_out_channels;
  const L = c.layers_per_block;
  let skips = ch[0]! * c.sample_size ** 2; // conv_in's output
  let peak = 0;
  ch.forEach((out, i) => {
    const pixels = (c.sample_size / 2 ** i) ** 2;
    skips += L * out * pixels + (i < ch.length - 1 ? out * pixels / 4 : 0);
    const heads = c.attention_head_dim === null ? 1 : Math.floor(out / c.attention_head_dim);
    const attends = c.down_block_types[i] === "AttnDownBlock2D" || c.up_block_types[ch.length - 1 - i] === "AttnUpBlock2D";
    // a resnet's input, two convolutions and the concatenated skip; attention's scores and softmax
    peak = Math.max(peak, 6 * out * pixels, attends ? 2 * heads * pixels ** 2 : 0);
  });
  return skips + peak;
}

export function estimateSize(c: SizeConfig): UNetSize {
  const params = countParams(c);
  return { params, weightBytes: 4 * params, forwardBytes: 4 * forwardElements(c) };
}

/** Bytes as people say them: 1.5 GB, 16.0 TB, 2.4e+24 bytes. */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
  if (bytes >= 1e21) return `${bytes.toExponential(1)} bytes`;
  const i = bytes < 1000 ? 0 : Math.min(Math.floor(Math.log10(bytes) / 3), units.length - 1);
  return i === 0 ? `${bytes} bytes` : `${(bytes / 1000 ** i).toFixed(1)} ${units[i]}`;
}

const formatCount = (n: number): string => (n < 1e15 ? n.toLocaleString("en-US") : n.toExponential(3));

/**
 * Why `c` cannot fit in `limitBytes` (the machine's memory by default), or null when it can.
 * The weights and one batch-1 forward must fit; sampling and training batches need more.
 */
export function whyTooLarge(c: SizeConfig, limitBytes = totalmem()): string | null {
  const { params, weightBytes, forwardBytes } = estimateSize(c);
  const need = weightBytes + forwardBytes;
  if (need <= limitBytes) return null;
  return (
    `this config makes a UNet of ${formatCount(params)} parameters (${formatBytes(weightBytes)} of float32 weights, ` +
    `${formatBytes(need)} with one forward pass at batch 1), more than this machine's ${formatBytes(limitBytes)} of memory; ` +
    `layers_per_block (${c.layers_per_block}), block_out_channels (${JSON.stringify(c.block_out_channels).slice(0, 60)}) and sample_size (${c.sample_size}) set the size`
  );
}
