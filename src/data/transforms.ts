// Image transforms, torchvision-style. Geometry and channel conversion work on uint8 images in
// torch's [C, H, W] layout (cheap, and folder images come in all sizes); a batch becomes a float
// tensor only at the end, scaled to [-1, 1] as DDPM expects (ToTensor + Normalize(0.5, 0.5)).
import * as torch from "../torch/index.js";

/** A uint8 image in torch's layout: `data` is [C, H, W], row-major. */
export interface ChwImage {
  channels: number;
  height: number;
  width: number;
  data: Uint8Array;
}

/**
 * How an image reaches the model's sample size:
 * - "pad": centred on a background (value 0, i.e. -1 after scaling) canvas; for images no larger
 *   than the sample (Fashion-MNIST 28 -> 32, the DDPM convention);
 * - "nearest" / "bilinear": the shorter side resized to the sample size, then a centre crop
 *   (torchvision's Resize(size) + CenterCrop(size), as diffusers' training script does).
 */
export type ResizeMode = "pad" | "nearest" | "bilinear";

/** ITU-R 601-2 luma with PIL's fixed-point rounding, as PIL's convert("L"). */
const luma = (r: number, g: number, b: number): number => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

/** Gray -> RGB repeats the plane; RGB(A) -> gray is PIL's luma; alpha is dropped (as PIL's convert). */
export function convertChannels(img: ChwImage, channels: number): ChwImage {
  if (img.channels === channels) return img;
  const plane = img.height * img.width;
  const src = img.data;
  const out = new Uint8Array(channels * plane);
  if (channels === 3 && img.channels === 1) {
    for (let c = 0; c < 3; c++) out.set(src.subarray(0, plane), c * plane);
  } else if (channels === 3 && img.channels === 4) {
    out.set(src.subarray(0, 3 * plane));
  } else if (channels === 1 && (img.channels === 3 || img.channels === 4)) {
    for (let i = 0; i < plane; i++) out[i] = luma(src[i]!, src[plane + i]!, src[2 * plane + i]!);
  } else {
    throw new RangeError(`convertChannels(): cannot convert ${img.channels} channels to ${channels} (supported: 1, 3, 4 -> 1, 3)`);
  }
  return { channels, height: img.height, width: img.width, data: out };
}

/** Places the image at the centre of a zero canvas (an odd extra pixel goes right/bottom). */
export function centerPad(img: ChwImage, height: number, width: number): ChwImage {
  if (img.height > height || img.width > width)
    throw new RangeError(`centerPad(): a ${img.height}x${img.width} image does not fit in ${height}x${width}; resize it instead`);
  if (img.height === height && img.width === width) return img;
  const top = (height - img.height) >> 1;
  const left = (width - img.width) >> 1;
  const out = new Uint8Array(img.channels * height * width);
  for (let c = 0; c < img.channels; c++)
    for (let y = 0; y < img.height; y++) {
      const from = (c * img.height + y) * img.width;
      out.set(img.data.subarray(from, from + img.width), (c * height + top + y) * width + left);
    }
  return { channels: img.channels, height, width, data: out };
}

/** The centred height x width window (an odd extra pixel is cut from the right/bottom). */
export function centerCrop(img: ChwImage, height: number, width: number): ChwImage {
  if (img.height < height || img.width < width)
    throw new RangeError(`centerCrop(): a ${img.height}x${img.width} image is smaller than ${height}x${width}`);
  if (img.height === height && img.width === width) return img;
  const top = (img.height - height) >> 1;
  const left = (img.width - width) >> 1;
  const out = new Uint8Array(img.channels * height * width);
  for (let c = 0; c < img.channels; c++)
    for (let y = 0; y < height; y++) {
      const from = (c * img.height + top + y) * img.width + left;
      out.set(img.data.subarray(from, from + width), (c * height + y) * width);
    }
  return { channels: img.channels, height, width, data: out };
}

/** Source index of each output pixel as torch's nearest interpolation: floor(i * in / out). */
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor((i * inSize) / outSize), inSize - 1);
  return idx;
}

/**
 * Triangle-filter taps along one axis, as PIL's (and torchvision's antialiased) bilinear resize:
 * pixel centres at i + 0.5, and the filter widened by the scale when shrinking so every source
 * pixel contributes.
 */
function bilinearTaps(inSize: number, outSize: number): { start: Int32Array; weights: Float32Array[] } {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const start = new Int32Array(outSize);
  const weights: Float32Array[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.floor(center - support + 0.5), 0);
    const hi = Math.min(Math.floor(center + support + 0.5), inSize);
    const w = new Float32Array(hi - lo);
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
      w[j - lo] = v;
      total += v;
    }
    for (let k = 0; k < w.length; k++) w[k]! /= total;
    start[i] = lo;
    weights.push(w);
  }
  return { start, weights };
}

/** Resizes to exactly height x width. */
export function resize(img: ChwImage, height: number, width: number, mode: "nearest" | "bilinear"): ChwImage {
  if (img.height === height && img.width === width) return img;
  const { channels } = img;
  const out = new Uint8Array(channels * height * width);
  if (mode === "nearest") {
    const ys = nearestIndices(img.height, height);
    const xs = nearestIndices(img.width, width);
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < height; y++) {
        const row = (c * img.height + ys[y]!) * img.width;
        const to = (c * height + y) * width;
        for (let x = 0; x < width; x++) out[to + x] = img.data[row + xs[x]!]!;
      }
    return { channels, height, width, data: out };
  }
  // Separable: rows first into a float buffer, then columns; one rounding at the end.
  const h = bilinearTaps(img.width, width);
  const v = bilinearTaps(img.height, height);
  const tmp = new Float32Array(channels * img.height * width);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < img.height; y++) {
      const row = (c * img.height + y) * img.width;
      for (let x = 0; x < width; x++) {
        const w = h.weights[x]!;
        const s = row + h.start[x]!;
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * img.data[s + k]!;
        tmp[(c * img.height + y) * width + x] = acc;
      }
    }
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++) {
      const w = v.weights[y]!;
      const s = v.start[y]!;
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * tmp[(c * img.height + s + k) * width + x]!;
        out[(c * height + y) * width + x] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  return { channels, height, width, data: out };
}

/** Brings an image to size x size by `mode` (see ResizeMode). */
export function fitToSize(img: ChwImage, size: number, mode: ResizeMode): ChwImage {
  if (mode === "pad") return centerPad(img, size, size);
  // Shorter side to `size`, keeping the aspect ratio (torchvision truncates the longer side).
  const short = Math.min(img.height, img.width);
  const height = img.height === short ? size : Math.floor((size * img.height) / short);
  const width = img.width === short ? size : Math.floor((size * img.width) / short);
  return centerCrop(resize(img, height, width, mode), size, size);
}

/** uint8 [B, C, H, W] bytes -> float32 tensor in [-1, 1]: x / 127.5 - 1. */
export function toNormalizedTensor(bytes: Uint8Array, shape: [number, number, number, number]): torch.Tensor {
  return torch.tidy(() => torch.tensor(bytes, { shape }).float().div(127.5).sub(1));
}

/** Mirrors (along width) the images of a [B, C, H, W] batch whose `flip` entry is true. */
export function flipWhere(images: torch.Tensor, flip: torch.Tensor): torch.Tensor {
  return torch.tidy(() => torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images));
}

/**
 * torchvision's RandomHorizontalFlip for a batch: each image is mirrored with probability p, drawn
 * with torch.rand, so torch.manualSeed() makes the flips reproducible.
 */
export function randomHorizontalFlip(images: torch.Tensor, p = 0.5): torch.Tensor {
  return torch.tidy(() => flipWhere(images, torch.rand([images.size(0)], { device: images.device }).lt(p)));
}
