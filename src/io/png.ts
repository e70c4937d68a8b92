// Images: PNG read/write (pngjs), JPEG read (jpeg-js), and conversions between 8-bit HWC images
// and [-1, 1] CHW tensors, including torchvision-style sample grids.
import { readFileSync } from "node:fs";
import jpeg from "jpeg-js";
import { PNG, type ColorType } from "pngjs";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "./atomic.js";

/** An 8-bit image: `data` is height x width x channels, row-major (HWC). */
export interface Image {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const startsWith = (bytes: Uint8Array, magic: number[]): boolean => magic.every((b, i) => bytes[i] === b);
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function checkImage(img: Image, what: string): void {
  const { width, height, channels, data } = img;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0)
    throw new RangeError(`${what}: size ${width}x${height} is not two positive integers`);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new RangeError(`${what}: ${channels} channels (expected 1, 3 or 4)`);
  if (data.length !== width * height * channels)
    throw new RangeError(`${what}: data has ${data.length} bytes but ${width}x${height}x${channels} needs ${width * height * channels}`);
}

/** Keeps `channels` of each RGBA pixel (1: the red = gray channel). */
function fromRgba(rgba: Uint8Array, width: number, height: number, channels: 1 | 3 | 4): Image {
  if (channels === 4) return { width, height, channels, data: new Uint8Array(rgba) };
  const n = width * height;
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = rgba[i * 4 + c]!;
  return { width, height, channels, data };
}

/**
 * PNG: pngjs always expands to 8-bit RGBA, so the channel count comes from the header's color
 * type: grayscale (0) gives 1 channel, RGB and palette give 3, and anything with alpha (color
 * types 4 and 6, or transparency from a tRNS chunk) gives RGBA, 4. 16-bit samples are scaled to 8.
 */
function decodePng(bytes: Uint8Array, name: string): Image {
  let png;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new Error(`${name}: not a valid PNG (${messageOf(err)})`);
  }
  const { width, height, data } = png;
  let alpha = (png.colorType & 4) !== 0;
  for (let i = 3; !alpha && i < data.length; i += 4) alpha = data[i] !== 255; // tRNS transparency
  const gray = (png.colorType & 2) === 0;
  return fromRgba(data, width, height, alpha ? 4 : gray ? 1 : 3);
}

/** The component count of a JPEG's frame header (SOFn), read from its markers. */
function jpegComponents(bytes: Uint8Array): number | undefined {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return bytes[i + 9];
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2; // markers without a length
      continue;
    }
    i += 2 + ((bytes[i + 2]! << 8) | bytes[i + 3]!);
  }
  return undefined;
}

/** JPEG: 1 channel for grayscale JPEGs (one component), otherwise RGB, 3. */
function decodeJpeg(bytes: Uint8Array, name: string): Image {
  let decoded;
  try {
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
  } catch (err) {
    throw new Error(`${name}: not a valid JPEG (${messageOf(err)})`);
  }
  const { width, height, data } = decoded;
  return fromRgba(data, width, height, jpegComponents(bytes) === 1 ? 1 : 3);
}

/** Decodes a PNG or JPEG file's bytes (told apart by their magic bytes). `name` goes into errors. */
export function decodeImage(bytes: Uint8Array, name = "image"): Image {
  if (startsWith(bytes, PNG_MAGIC)) return decodePng(bytes, name);
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return decodeJpeg(bytes, name);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new Error(`${name}: not a PNG or JPEG file (starts with ${head || "nothing: the file is empty"})`);
}

export function readImage(path: string): Image {
  return decodeImage(readFileSync(path), path);
}

const COLOR_TYPE: Record<Image["channels"], ColorType> = { 1: 0, 3: 2, 4: 6 };

/** An 8-bit PNG of gray (1 channel), RGB (3) or RGBA (4) pixels, as the image has. */
export function encodePng(img: Image): Uint8Array {
  checkImage(img, "encodePng");
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const colorType = COLOR_TYPE[img.channels];
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: img.channels === 4, bitDepth: 8 });
}

/** Writes a PNG atomically. */
export function writePng(path: string, img: Image): void {
  writeFileAtomic(path, encodePng(img));
}

// ---- tensors ----

/** A tensor's values as float32 on the CPU, without disturbing the caller's tensor. */
function valuesOf(t: torch.Tensor): Float32Array {
  const cpu = t.to({ device: "cpu", dtype: "float32" });
  try {
    return cpu.toTypedArray() as Float32Array;
  } finally {
    cpu.dispose();
  }
}

/** [-1, 1] -> [0, 255] as torchvision's save_image rounds: floor(v * 255 + 0.5), clamped. */
const toByte = (x: number): number => Math.min(255, Math.max(0, Math.floor(((x + 1) / 2) * 255 + 0.5)));

function channelsOf(c: number | undefined, what: string): 1 | 3 | 4 {
  if (c !== 1 && c !== 3 && c !== 4) throw new RangeError(`${what}: ${c} channels (expected 1, 3 or 4)`);
  return c;
}

/** A [C, H, W] tensor with values in [-1, 1] as an 8-bit image (values outside are clamped). */
export function imageFromTensor(t: torch.Tensor): Image {
  if (t.ndim !== 3) throw new RangeError(`imageFromTensor: expected a [C, H, W] tensor, got shape [${t.shape.join(", ")}]`);
  const [c, height, width] = t.shape as [number, number, number];
  const channels = channelsOf(c, "imageFromTensor");
  const values = valuesOf(t);
  const plane = height * width;
  const data = new Uint8Array(plane * channels);
  for (let ch = 0; ch < channels; ch++) for (let i = 0; i < plane; i++) data[i * channels + ch] = toByte(values[ch * plane + i]!);
  return { width, height, channels, data };
}

/** An 8-bit image as a [C, H, W] float32 tensor in [-1, 1] (x / 255 * 2 - 1). */
export function tensorFromImage(img: Image): torch.Tensor {
  checkImage(img, "tensorFromImage");
  const { width, height, channels, data } = img;
  const plane = height * width;
  const out = new Float32Array(plane * channels);
  for (let ch = 0; ch < channels; ch++) for (let i = 0; i < plane; i++) out[ch * plane + i] = (data[i * channels + ch]! / 255) * 2 - 1;
  return torch.tensor(out, { shape: [channels, height, width] });
}

/**
 * A grid of [N, C, H, W] images in [-1, 1], laid out as torchvision.utils.make_grid does:
 * nrow images per row (default ceil(sqrt(N))), `padding` pixels around and between them, a single
 * image returned as it is. Differences: the padding is black (torchvision pads with 0 in the
 * input's range, which is black for the [0, 1] images save_image usually gets), and 1-channel
 * images stay 1-channel instead of being repeated to RGB.
 */
export function makeGrid(images: torch.Tensor, nrow?: number, padding = 2): Image {
  if (images.ndim !== 4) throw new RangeError(`makeGrid: expected an [N, C, H, W] tensor, got shape [${images.shape.join(", ")}]`);
  const [n, c, h, w] = images.shape as [number, number, number, number];
  const channels = channelsOf(c, "makeGrid");
  if (n === 0) throw new RangeError("makeGrid: no images");
  if (!Number.isSafeInteger(padding) || padding < 0) throw new RangeError(`makeGrid: padding ${padding} is not a non-negative integer`);
  if (n === 1) {
    const one = images.select(0, 0);
    try {
      return imageFromTensor(one);
    } finally {
      one.dispose();
    }
  }
  const perRow = nrow ?? Math.ceil(Math.sqrt(n));
  if (!Number.isSafeInteger(perRow) || perRow < 1) throw new RangeError(`makeGrid: nrow ${perRow} is not a positive integer`);
  const cols = Math.min(perRow, n);
  const rows = Math.ceil(n / cols);
  const width = cols * (w + padding) + padding;
  const height = rows * (h + padding) + padding;
  const data = new Uint8Array(width * height * channels); // black padding
  const values = valuesOf(images);
  const plane = h * w;
  for (let k = 0; k < n; k++) {
    const top = Math.floor(k / cols) * (h + padding) + padding;
    const left = (k % cols) * (w + padding) + padding;
    for (let ch = 0; ch < channels; ch++) {
      const src = (k * channels + ch) * plane;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) data[((top + y) * width + left + x) * channels + ch] = toByte(values[src + y * w + x]!);
    }
  }
  return { width, height, channels, data };
}
