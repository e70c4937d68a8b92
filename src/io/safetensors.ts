// safetensors, our own implementation of huggingface/safetensors' format (the layout of
// diffusers checkpoints): 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the data area, which the tensors must cover exactly, in offset order, without gaps.
// Names follow the Python `safetensors.torch` module (load_file -> loadFile, save_file -> saveFile).
import { readFileSync } from "node:fs";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "./atomic.js";

/**
 * The dtypes the format names, in the reference's enum order: serialize() sorts tensors by this
 * order, descending (8-byte types first, so every tensor is aligned to its element size), then
 * by name, as the reference does. (The sub-byte F4/F6 types are not accepted.)
 */
const DTYPES = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"] as const;
export type SafetensorsDType = (typeof DTYPES)[number];

const ITEM_SIZE: Record<SafetensorsDType, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/** A tensor as stored: `data` is a view into the parsed bytes (not a copy, maybe unaligned). */
export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

export interface Parsed {
  /** In data order (ascending offsets). */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** The reference's limit: a larger header means a corrupt file, not a big model. */
const MAX_HEADER_BYTES = 100_000_000;

const isSafetensorsDType = (s: unknown): s is SafetensorsDType =>
  typeof s === "string" && (DTYPES as readonly string[]).includes(s);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const show = (v: unknown): string => {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = "a value too deeply nested to show";
  }
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
};

/** serde_json's recursion limit: the reference reader refuses headers nested deeper. */
const MAX_DEPTH = 128;

/** The deepest nesting of arrays and objects in a JSON text (strings skipped). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Checks one header entry against the format; `fail` prefixes the file name. */
function readEntry(name: string, raw: unknown, dataLength: number, fail: (msg: string) => SafetensorsError): Entry {
  const what = `tensor ${JSON.stringify(name)}`;
  if (!isRecord(raw)) throw fail(`${what}: entry is ${show(raw)}, not an object with dtype, shape and data_offsets`);
  for (const key of ["dtype", "shape", "data_offsets"]) if (!(key in raw)) throw fail(`${what}: entry has no ${key}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isSafetensorsDType(dtype)) throw fail(`${what}: unknown dtype ${show(dtype)} (expected one of ${DTYPES.join(", ")})`);
  if (!Array.isArray(shape) || !shape.every(isCount))
    throw fail(`${what}: shape ${show(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount))
    throw fail(`${what}: data_offsets ${show(offsets)} is not two non-negative integers [begin, end]`);
  // `+ 0` turns a JSON "-0" into 0, so no -0 leaks into shapes.
  const [begin, end] = (offsets as number[]).map((v) => v + 0) as [number, number];
  if (begin > end) throw fail(`${what}: data_offsets [${begin}, ${end}] begin after they end`);
  // BigInt: a hostile shape may overflow a double's exact range.
  const need = (shape as number[]).reduce((n, d) => n * BigInt(d), 1n) * BigInt(ITEM_SIZE[dtype]);
  if (BigInt(end - begin) !== need)
    throw fail(`${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${need}`);
  if (end > dataLength)
    throw fail(`${what}: data_offsets [${begin}, ${end}] run past the data area of ${dataLength} bytes (truncated file?)`);
  return { name, dtype, shape: (shape as number[]).map((d) => d + 0), begin, end };
}

function readMetadata(raw: unknown, fail: (msg: string) => SafetensorsError): Record<string, string> {
  if (raw === null) return {};
  if (!isRecord(raw)) throw fail(`__metadata__ is ${show(raw)}, not an object of strings`);
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") throw fail(`__metadata__ ${JSON.stringify(key)} is ${show(value)}, not a string`);
    Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The first key that appears twice in one object of `text` (valid JSON), said as an error names
 * it, or null. JSON.parse keeps the last silently; the reference (serde) refuses such a header.
 */
function repeatedKey(text: string): string | null {
  const open: (Set<string> | null)[] = []; // one per open container: its keys so far, null for a list
  let tensor: string | null = null; // the top-level key we are inside
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b) open.push(new Set());
    else if (c === 0x5b) open.push(null);
    else if (c === 0x7d || c === 0x5d) open.pop();
    else if (c === QUOTE) {
      let end = i + 1;
      while (text.charCodeAt(end) !== QUOTE) end += text.charCodeAt(end) === BACKSLASH ? 2 : 1;
      const keys = open[open.length - 1];
      let next = end + 1;
      while (isSpace(text.charCodeAt(next))) next++;
      if (keys && text.charCodeAt(next) === COLON) {
        const literal = text.slice(i, end + 1);
        const key = literal.includes("\\") ? (JSON.parse(literal) as string) : literal.slice(1, -1);
        if (keys.has(key))
          return open.length === 1
            ? `the header names ${key === "__metadata__" ? "__metadata__" : `tensor ${JSON.stringify(key)}`} twice`
            : `${tensor === "__metadata__" ? "__metadata__" : `tensor ${JSON.stringify(tensor)}`}: key ${JSON.stringify(key)} appears twice`;
        keys.add(key);
        if (open.length === 1) tensor = key;
      }
      i = end;
    }
  }
  return null;
}

/**
 * Parses and validates a safetensors file's bytes. Throws SafetensorsError naming `source`
 * (the file, when known), the tensor and the problem. Never allocates from an unchecked length.
 */
export function parse(bytes: Uint8Array, source = "safetensors"): Parsed {
  const fail = (msg: string): SafetensorsError => new SafetensorsError(`${source}: ${msg}`);
  // A plain view, so that the views we hand out are not Buffers (whose slice() does not copy).
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8) throw fail(`file has ${bytes.byteLength} bytes, too short for the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES))
    throw fail(`header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.byteLength)
    throw fail(`header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes; truncated?)`);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    throw fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw fail(`header does not start with '{' (starts with ${show(text.slice(0, 16))})`);
  if (nestingDepth(text) > MAX_DEPTH) throw fail(`header nests arrays or objects deeper than ${MAX_DEPTH} levels (the reference reader refuses it): the file is corrupt`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw fail(`header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isRecord(header)) throw fail("header is not a JSON object");
  const repeated = repeatedKey(text);
  if (repeated)
    throw fail(`${repeated}: a JSON reader keeps only one of them, so the file is corrupt or was written by a faulty tool; re-export it`);

  const dataLength = bytes.byteLength - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") metadata = readMetadata(raw, fail);
    else entries.push(readEntry(name, raw, dataLength, fail));
  }

  // The reference requires the tensors, in offset order, to tile the data area exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    const what = `tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}]`;
    if (e.begin < covered) throw fail(`${what} overlap tensor ${JSON.stringify(previous?.name)}, which ends at ${covered}`);
    if (e.begin > covered) throw fail(`${what} leave a gap: bytes [${covered}, ${e.begin}) of the data area belong to no tensor`);
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength)
    throw fail(`the data area has ${dataLength} bytes but the tensors cover only ${covered} (trailing bytes belong to no tensor)`);

  const tensors = new Map<string, TensorInfo>();
  for (const e of entries)
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: bytes.subarray(dataStart + e.begin, dataStart + e.end) });
  return { tensors, metadata };
}

// ---- tensors <-> bytes ----

const FROM_TORCH: Partial<Record<torch.DType, SafetensorsDType>> = {
  float32: "F32", float64: "F64", int64: "I64", int32: "I32", uint8: "U8", bool: "BOOL",
};
const TO_TORCH: Partial<Record<SafetensorsDType, torch.LoadDType>> = {
  F32: "float32", F64: "float64", I64: "int64", I32: "int32", U8: "uint8", BOOL: "bool",
  F16: "float16", BF16: "bfloat16",
};

// Typed arrays use the platform's byte order; the format is little-endian.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A tensor from a stored entry; copies first, since `data` may be unaligned for its element type. */
function tensorFromInfo(info: TensorInfo, dtype: torch.LoadDType): torch.Tensor {
  const copy = new Uint8Array(info.data); // fresh, aligned buffer
  const buffer = copy.buffer;
  const shape = info.shape;
  switch (dtype) {
    case "float32":
      return torch.tensor(new Float32Array(buffer), { shape, dtype });
    case "float64":
      return torch.tensor(new Float64Array(buffer), { shape, dtype });
    case "int64":
      return torch.tensor(new BigInt64Array(buffer), { shape, dtype });
    case "int32":
      return torch.tensor(new Int32Array(buffer), { shape, dtype });
    case "float16":
    case "bfloat16":
      return torch.tensor(new Uint16Array(buffer), { shape, dtype });
    case "bool":
      for (let i = 0; i < copy.length; i++) copy[i] = copy[i] ? 1 : 0; // libtorch expects 0/1
      return torch.tensor(copy, { shape, dtype });
    case "uint8":
      return torch.tensor(copy, { shape, dtype });
  }
}

/**
 * Loads every tensor of a safetensors file onto the CPU: F32, F64, I64, I32, U8 and BOOL keep
 * their type, F16 and BF16 are widened to float32. Other dtypes are an error.
 */
export function loadFile(path: string): Map<string, torch.Tensor> {
  return load(readFileSync(path), path);
}

/** loadFile for bytes already in memory (Python's `safetensors.torch.load`). */
export function load(bytes: Uint8Array, source = "safetensors"): Map<string, torch.Tensor> {
  if (!LITTLE_ENDIAN) throw new SafetensorsError(`${source}: loading needs a little-endian machine`);
  const { tensors } = parse(bytes, source);
  for (const [name, info] of tensors)
    if (!TO_TORCH[info.dtype])
      throw new SafetensorsError(`${source}: tensor ${JSON.stringify(name)}: dtype ${info.dtype} is not supported (use F32, F64, F16, BF16, I64, I32, U8 or BOOL)`);
  const out = new Map<string, torch.Tensor>();
  try {
    for (const [name, info] of tensors) out.set(name, tensorFromInfo(info, TO_TORCH[info.dtype]!));
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
  return out;
}

/** Orders names as Rust's String ordering does: by UTF-8 bytes, not UTF-16 units. */
const compareUtf8 = (a: string, b: string): number => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/**
 * The bytes of a safetensors file holding `tensors` (float32, float64, int64, int32, uint8, bool),
 * laid out as the reference does: tensors sorted by descending dtype alignment then name, data
 * contiguous, the compact JSON header (`__metadata__` first) padded with spaces to 8 bytes.
 */
export function serialize(
  tensors: Map<string, torch.Tensor> | Record<string, torch.Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new SafetensorsError("safetensors: saving needs a little-endian machine");
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const items = list.map(([name, t]) => {
    if (name === "__metadata__") throw new SafetensorsError('safetensors: "__metadata__" is reserved and cannot name a tensor');
    const dtype = FROM_TORCH[t.dtype];
    if (!dtype) throw new SafetensorsError(`safetensors: tensor ${JSON.stringify(name)}: dtype ${t.dtype} cannot be saved`);
    const a = t.toTypedArray();
    return { name, dtype, shape: [...t.shape], data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
  });
  items.sort((a, b) => DTYPES.indexOf(b.dtype) - DTYPES.indexOf(a.dtype) || compareUtf8(a.name, b.name));

  // Built by hand: JSON.stringify of an object would move integer-like names ("0") to the front.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const entries = Object.entries(metadata);
    for (const [key, value] of entries)
      if (typeof value !== "string") throw new SafetensorsError(`safetensors: metadata ${JSON.stringify(key)} is not a string`);
    parts.push(`"__metadata__":{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`);
  }
  let offset = 0;
  for (const it of items) {
    const info = { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.data.byteLength] };
    parts.push(`${JSON.stringify(it.name)}:${JSON.stringify(info)}`);
    offset += it.data.byteLength;
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const headerLength = Math.ceil(json.byteLength / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLength); // spaces, as the reference pads
  let at = 8 + headerLength;
  for (const it of items) {
    out.set(it.data, at);
    at += it.data.byteLength;
  }
  return out;
}

/** Writes `tensors` (and optional string metadata) to `path` atomically. */
export function saveFile(
  tensors: Map<string, torch.Tensor> | Record<string, torch.Tensor>,
  path: string,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, serialize(tensors, metadata));
}
