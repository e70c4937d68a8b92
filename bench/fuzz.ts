// The safetensors reader under fuzzing (`npm run fuzz`; test/io/safetensors-fuzz.test.ts runs a
// shorter pass): seeded mutants of a small valid file, each of which must parse to something
// self-consistent or be refused with a SafetensorsError naming the file; never abort, hang, or
// throw anything else. Mutants are byte-level (flips, header lengths, truncation, spliced numbers,
// data bytes) or structural (duplicate keys, missing and extra fields, wrong dtypes, non-object
// entries, __metadata__ of wrong types, deep nesting, reordering, odd names, whitespace); where
// the format fixes the outcome (a duplicate key is refused, a reordered header parses), the
// mutant is checked against it.
//
// The loop runs in a child process, so that a native abort or a hang is a failed exit that names
// the case, not a dead caller.
//   node dist/bench/fuzz.js [--iterations N] [--seed S]   N: $DIFFPRUNE_FUZZ_ITERATIONS, else 100000
//   node dist/bench/fuzz.js --seed S --case I              case I alone, in this process, with its bytes
// Prints one JSON object to stdout; exits 1 when a case failed, 2 when the worker died or hung.
import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import * as torch from "../src/torch/index.js";
import { load, parse, serialize, SafetensorsError } from "../src/io/index.js";
import { mulberry32 } from "../test/helpers/random.js";

// ---- the base file ----

const ITEM_SIZE: Record<string, number> = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 };
const DTYPES = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"];

/** Five tensors of four dtypes (one empty) and __metadata__, as the reference lays them out. */
function baseFile(): Uint8Array {
  const tensors = {
    weight: torch.tensor(new Float32Array([1, -2, 3.5, 0, -0, 1e30]), { shape: [2, 3] }),
    steps: torch.tensor(new BigInt64Array([1n, -5n])),
    scale: torch.tensor(new Float64Array([0.25]), { shape: [] }),
    mask: torch.tensor(new Uint8Array([1, 0, 1]), { dtype: "bool" }),
    none: torch.tensor(new Float32Array(0), { shape: [0, 4] }),
  };
  const bytes = serialize(tensors, { format: "pt" });
  torch.dispose(Object.values(tensors));
  return bytes;
}

const headerEndOf = (bytes: Uint8Array): number => 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

/** A file from a header (text, or its bytes) and a data area; the header is padded with spaces to 8 bytes. */
function assemble(header: string | Uint8Array, data: Uint8Array): Uint8Array {
  const json = typeof header === "string" ? Buffer.from(header, "utf8") : header;
  const length = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + length + data.length).fill(0x20, 8, 8 + length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + length);
  return bytes;
}

// ---- a JSON that can say what JSON.parse cannot keep ----

/**
 * A header value. Objects are lists of [key as written, value], so a key can appear twice or be
 * spelled with escapes; `raw` is text written as it is (nesting too deep to build as values).
 */
type Json = null | boolean | number | string | Json[] | Obj | Raw;
interface Obj {
  pairs: [string, Json][];
}
interface Raw {
  raw: string;
}
const isObj = (v: Json): v is Obj => typeof v === "object" && v !== null && "pairs" in v;

function fromValue(v: unknown): Json {
  if (Array.isArray(v)) return v.map(fromValue);
  if (typeof v === "object" && v !== null) return { pairs: Object.entries(v).map(([k, x]) => [JSON.stringify(k), fromValue(x)]) };
  return v as Json;
}

/** The text of `v`; `space` returns what goes between tokens. */
function write(v: Json, space: () => string = () => ""): string {
  if (Array.isArray(v)) return `[${space()}${v.map((x) => write(x, space)).join(`${space()},${space()}`)}${space()}]`;
  if (isObj(v)) return `{${space()}${v.pairs.map(([k, x]) => `${k}${space()}:${space()}${write(x, space)}`).join(`${space()},${space()}`)}${space()}}`;
  if (typeof v === "object" && v !== null) return v.raw;
  return JSON.stringify(v);
}

const copy = (v: Json): Json => (Array.isArray(v) ? v.map(copy) : isObj(v) ? { pairs: v.pairs.map(([k, x]) => [k, copy(x)]) } : v);
const keyOf = (name: string): string => JSON.stringify(name);
const nameOf = (key: string): string => JSON.parse(key) as string;

// ---- mutations ----

/** What a mutant must do: parse, be refused with a message matching, or either (null). */
type Expect = "parse" | RegExp | null;
interface Mutant {
  bytes: Uint8Array;
  expect: Expect;
  /** A tensor name that must be in a clean parse. */
  holds?: string;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const NUMBERS = ["0", "1", "-1", "7", "8", "24", "4294967296", "9007199254740993", "1e400", "-0", "2.5", "1e3", "18446744073709551615", "null", '"8"'];
const SPECIALS = [..."{}[]\",:0123456789 -.e", "\u00ff"];
const WHITESPACE = [" ", "\n", "\t", "\r", "  \n  "];

const BAD_DTYPES: Json[] = ["f32", "F4", "F6_E2M3", "", "FLOAT32", "float32", "F32 ", " F32", "I128", "C64", "BOOL\u0000", "f\u00fc", 32, null, true, ["F32"], { pairs: [['"F32"', 1]] }];
const NOT_OBJECTS: Json[] = [[], [1, 2], ["F32", [2], [0, 4]], "F32", 0, -1, null, true, false, { raw: "1e400" }];
const BAD_METADATA: Json[] = ["pt", 1, true, [], ["format", "pt"], { pairs: [['"format"', 1]] }, { pairs: [['"format"', null]] }, { pairs: [['"format"', { pairs: [] }]] }, { pairs: [['"format"', ["pt"]]] }, { pairs: [['"format"', true]] }, { pairs: [['"a"', "b"], ['"n"', 0]] }];
const GOOD_METADATA: Json[] = [null, { pairs: [] }, { pairs: [['""', ""]] }, { pairs: [['"__proto__"', "x"]] }, { pairs: [['"format"', "np"], ['"x"', "\u00fc\u0000"]] }];
const BAD_SHAPES: Json[] = ["2,3", [2.5, 3], [-2, -3], [[2], [3]], [2, "3"], null, { pairs: [] }, true, [2, 3, null], [{ raw: "1e400" }], 6];
const BAD_OFFSETS: Json[] = [[0], [0, 1, 2], ["0", "24"], null, "0-24", [0.5, 24], [-1, 23], { pairs: [] }, [], [{ raw: "1e400" }, 0]];
const NAMES = ["", "__proto__", "constructor", "toString", "hasOwnProperty", "a b", "\u00fc", "\u540d\u524d", "x".repeat(1000), 'a"b', "a\\b", "\u0000", "\ud83d\ude00", "__metadata", "__metadata__x", "0", "-1"];
const EXTRA_KEYS = ["offsets", "dtype_", "DTYPE", "", "__proto__", "constructor", "data_offsets_", "Shape"];
const DEPTHS = [10, 100, 1000, 4000, 10_000, 30_000];

/** `key` (a JSON string literal) with some of its characters written as \u escapes: the same key to a reader. */
function escaped(key: string, rand: () => number): string {
  const name = nameOf(key);
  let out = "";
  for (const ch of name) {
    const units = Array.from({ length: ch.length }, (_, i) => "\\u" + ch.charCodeAt(i).toString(16).padStart(4, "0"));
    out += rand() < 0.5 ? units.join("") : JSON.stringify(ch).slice(1, -1);
  }
  return `"${out}"`;
}

/** `depth` nested arrays or objects, as text. */
const deep = (depth: number, objects: boolean): Raw => ({ raw: objects ? '{"a":'.repeat(depth) + "1" + "}".repeat(depth) : "[".repeat(depth) + "]".repeat(depth) });

function byteMutation(kind: number, src: Uint8Array, rand: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rand() * n);
  const headerEnd = headerEndOf(src);
  let bytes: Uint8Array = src.slice();
  switch (kind) {
    case 0: // byte flips in the header
      for (let k = 1 + int(4); k > 0; k--) {
        const at = 8 + int(headerEnd - 8);
        bytes[at] = rand() < 0.5 ? int(256) : SPECIALS[int(SPECIALS.length)]!.charCodeAt(0) & 0xff;
      }
      break;
    case 1: {
      const choices = [BigInt(int(bytes.length + 16)), BigInt(int(2 ** 32)) * BigInt(int(2 ** 32)), 2n ** 63n, 2n ** 64n - 1n, 100_000_001n];
      new DataView(bytes.buffer).setBigUint64(0, choices[int(choices.length)]!, true);
      break;
    }
    case 2:
      bytes = bytes.slice(0, int(bytes.length));
      break;
    case 3: {
      const text = Buffer.from(bytes.subarray(8, headerEnd)).toString("latin1");
      const runs = [...text.matchAll(/-?\d+/g)];
      const run = runs[int(runs.length)]!;
      const spliced = text.slice(0, run.index) + NUMBERS[int(NUMBERS.length)] + text.slice(run.index! + run[0].length);
      bytes = assemble(Buffer.from(spliced.trimEnd(), "latin1"), src.subarray(headerEnd));
      break;
    }
    case 4: // data bytes: must still parse
      for (let k = 1 + int(8); k > 0 && bytes.length > headerEnd; k--) bytes[headerEnd + int(bytes.length - headerEnd)] = int(256);
      break;
  }
  return bytes;
}

const BYTE_KINDS = ["header bytes", "header length", "truncation", "spliced number", "data bytes"] as const;

/**
 * The structural mutations: each edits the header (as pairs) and says what the result must do.
 * `data` is the data area, which a mutation may replace.
 */
const STRUCTURAL: Record<string, (header: Obj, rand: () => number, data: { bytes: Uint8Array }) => { expect: Expect; holds?: string; text?: string }> = {
  "duplicate tensor": (h, rand) => {
    const tensors = h.pairs.filter(([k]) => k !== '"__metadata__"');
    const [key, value] = pick(tensors, rand);
    const other = rand() < 0.5 ? copy(value) : copy(pick(tensors, rand)[1]);
    h.pairs.splice(Math.floor(rand() * (h.pairs.length + 1)), 0, [rand() < 0.35 ? escaped(key, rand) : key, other]);
    return { expect: new RegExp(`: the header names tensor ${escapeRegExp(key)} twice`) };
  },
  "duplicate field": (h, rand) => {
    const [key, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    const [field, value] = pick(entry.pairs, rand);
    const other = rand() < 0.5 ? copy(value) : field === '"dtype"' ? pick(DTYPES, rand) : field === '"shape"' ? [int(rand, 9)] : [0, int(rand, 64)];
    entry.pairs.splice(Math.floor(rand() * (entry.pairs.length + 1)), 0, [rand() < 0.35 ? escaped(field, rand) : field, other]);
    return { expect: new RegExp(`: tensor ${escapeRegExp(key)}: key ${escapeRegExp(field)} appears twice`) };
  },
  "duplicate metadata": (h, rand) => {
    const at = h.pairs.findIndex(([k]) => k === '"__metadata__"');
    const metadata = h.pairs[at]![1] as Obj;
    if (rand() < 0.5) {
      const other = rand() < 0.5 ? copy(metadata) : pick<Json>([null, { pairs: [] }, { pairs: [['"format"', "np"]] }], rand);
      h.pairs.splice(Math.floor(rand() * (h.pairs.length + 1)), 0, [rand() < 0.35 ? escaped('"__metadata__"', rand) : '"__metadata__"', other]);
      return { expect: /: the header names __metadata__ twice/ };
    }
    metadata.pairs.splice(Math.floor(rand() * 2), 0, [rand() < 0.35 ? escaped('"format"', rand) : '"format"', pick(["pt", "np", "tf"], rand)]);
    return { expect: /: __metadata__: key "format" appears twice/ };
  },
  "missing field": (h, rand) => {
    const [key, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    const gone = Math.floor(rand() * entry.pairs.length);
    const [field] = entry.pairs.splice(gone, 1)[0]!;
    return { expect: new RegExp(`: tensor ${escapeRegExp(key)}: entry has no ${nameOf(field)}`) };
  },
  "extra field": (h, rand) => {
    const [, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    const value = pick<Json>(["F32", [0, 4], [2, 3], null, { pairs: [] }, 7], rand);
    entry.pairs.splice(Math.floor(rand() * (entry.pairs.length + 1)), 0, [keyOf(pick(EXTRA_KEYS, rand)), value]);
    return { expect: null };
  },
  "wrong dtype": (h, rand) => {
    const [key, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    entry.pairs.find(([k]) => k === '"dtype"')![1] = copy(pick(BAD_DTYPES, rand));
    return { expect: new RegExp(`: tensor ${escapeRegExp(key)}: unknown dtype`) };
  },
  "other dtype": (h, rand) => {
    const [, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    entry.pairs.find(([k]) => k === '"dtype"')![1] = pick(DTYPES, rand);
    return { expect: null };
  },
  "non-object entry": (h, rand) => {
    const at = pick([...h.pairs.keys()].filter((i) => h.pairs[i]![0] !== '"__metadata__"'), rand);
    h.pairs[at]![1] = copy(pick(NOT_OBJECTS, rand));
    return { expect: new RegExp(`: tensor ${escapeRegExp(h.pairs[at]![0])}: entry is .*not an object`) };
  },
  "metadata type": (h, rand) => {
    const at = h.pairs.findIndex(([k]) => k === '"__metadata__"');
    if (rand() < 0.3) {
      h.pairs[at]![1] = copy(pick(GOOD_METADATA, rand));
      return { expect: "parse" };
    }
    h.pairs[at]![1] = copy(pick(BAD_METADATA, rand));
    return { expect: /: __metadata__/ };
  },
  "shape type": (h, rand) => {
    const [key, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    entry.pairs.find(([k]) => k === '"shape"')![1] = copy(pick(BAD_SHAPES, rand));
    return { expect: new RegExp(`: tensor ${escapeRegExp(key)}: shape .* is not a list of non-negative integers`) };
  },
  "offsets type": (h, rand) => {
    const [key, entry] = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand) as [string, Obj];
    entry.pairs.find(([k]) => k === '"data_offsets"')![1] = copy(pick(BAD_OFFSETS, rand));
    return { expect: new RegExp(`: tensor ${escapeRegExp(key)}: data_offsets .* is not two non-negative integers`) };
  },
  "header not an object": (h, rand) => {
    const text = write(pick<Json>([[], h.pairs.map(([, v]) => v), "header", 1, null, true], rand));
    return { expect: /: header (does not start with '\{'|is not a JSON object)/, text };
  },
  "deep nesting": (h, rand) => {
    const depth = pick(DEPTHS, rand);
    const objects = rand() < 0.5;
    const tensors = h.pairs.filter(([k]) => k !== '"__metadata__"');
    const [, entry] = pick(tensors, rand) as [string, Obj];
    // Deeper than serde_json's limit of 128, the whole header is refused first.
    const orTooDeep = (r: RegExp): RegExp => (depth >= 100 ? new RegExp(`${r.source}|: header nests arrays or objects deeper than 128 levels`) : r);
    switch (Math.floor(rand() * 5)) {
      case 0: // an entry
        pick(tensors, rand)[1] = deep(depth, objects);
        return { expect: orTooDeep(objects ? /: tensor .*: entry has no dtype/ : /: tensor .*: entry is /) };
      case 1: // a shape
        entry.pairs.find(([k]) => k === '"shape"')![1] = deep(depth, objects);
        return { expect: orTooDeep(/: tensor .*: shape /) };
      case 2: // __metadata__
        h.pairs.find(([k]) => k === '"__metadata__"')![1] = deep(depth, objects);
        return { expect: orTooDeep(/: __metadata__/) };
      case 3: // a metadata value
        (h.pairs.find(([k]) => k === '"__metadata__"')![1] as Obj).pairs.push(['"deep"', deep(depth, objects)]);
        return { expect: orTooDeep(/: __metadata__ "deep" is /) };
      default: // an extra field, which a reader may ignore
        entry.pairs.push(['"deep"', deep(depth, objects)]);
        return { expect: null };
    }
  },
  reorder: (h, rand) => {
    shuffle(h.pairs, rand);
    for (const [, v] of h.pairs) if (isObj(v)) shuffle(v.pairs, rand);
    return { expect: "parse" };
  },
  rename: (h, rand) => {
    const name = pick(NAMES, rand);
    const pair = pick(h.pairs.filter(([k]) => k !== '"__metadata__"'), rand);
    pair[0] = rand() < 0.3 ? escaped(keyOf(name), rand) : keyOf(name);
    return { expect: "parse", holds: name };
  },
  whitespace: (h, rand) => {
    const text = write(h, () => (rand() < 0.3 ? pick(WHITESPACE, rand) : ""));
    return { expect: "parse", text };
  },
  "empty header": (_h, rand, data) => {
    if (rand() < 0.5) {
      data.bytes = new Uint8Array(0);
      return { expect: "parse", text: pick(["{}", "{ }", '{"__metadata__":{}}', '{"__metadata__":null}'], rand) };
    }
    return { expect: /: the data area has \d+ bytes but the tensors cover only 0/, text: "{}" };
  },
};

const int = (rand: () => number, n: number): number => Math.floor(rand() * n);
function pick<T>(xs: readonly T[], rand: () => number): T {
  return xs[Math.floor(rand() * xs.length)]!;
}
function shuffle<T>(xs: T[], rand: () => number): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}

const KINDS: readonly string[] = [...BYTE_KINDS, ...Object.keys(STRUCTURAL)];

/** Case `index` of the run seeded `seed`: its own generator, so that any case can be rebuilt alone. */
function mutant(src: Uint8Array, seed: number, index: number): Mutant & { kind: string } {
  const rand = mulberry32((Math.imul(seed, 1_000_003) + index) | 0);
  if (rand() < 0.5) {
    const kind = int(rand, BYTE_KINDS.length);
    return { kind: BYTE_KINDS[kind]!, bytes: byteMutation(kind, src, rand), expect: kind === 4 ? "parse" : null };
  }
  const names = Object.keys(STRUCTURAL);
  const kind = pick(names, rand);
  const headerEnd = headerEndOf(src);
  const header = fromValue(JSON.parse(Buffer.from(src.subarray(8, headerEnd)).toString("utf8"))) as Obj;
  const data = { bytes: src.subarray(headerEnd) };
  const { expect, holds, text } = STRUCTURAL[kind]!(header, rand, data);
  return { kind, bytes: assemble(text ?? write(header), data.bytes), expect, ...(holds !== undefined ? { holds } : {}) };
}

// ---- the check ----

/** "parsed" or "rejected"; throws an Error saying what went wrong otherwise. */
function check(m: Mutant): "parsed" | "rejected" {
  let result: ReturnType<typeof parse>;
  try {
    result = parse(m.bytes, "fuzz");
  } catch (err) {
    if (!(err instanceof SafetensorsError)) throw new Error(`threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a SafetensorsError`);
    if (!/^fuzz: /.test(err.message)) throw new Error(`the message does not name the file: ${err.message}`);
    if (m.expect === "parse") throw new Error(`refused a valid file: ${err.message}`);
    if (m.expect instanceof RegExp && !m.expect.test(err.message)) throw new Error(`refused, but the message does not match ${m.expect}: ${err.message}`);
    return "rejected";
  }
  if (m.expect instanceof RegExp) throw new Error(`parsed a file that must be refused (${m.expect})`);
  if (m.holds !== undefined && !result.tensors.has(m.holds)) throw new Error(`parsed without tensor ${JSON.stringify(m.holds)}`);
  let covered = 0;
  for (const [name, info] of result.tensors) {
    const numel = info.shape.reduce((a, b) => a * b, 1);
    if (info.data.byteLength !== numel * (ITEM_SIZE[info.dtype] ?? 1)) throw new Error(`tensor ${name}: ${info.data.byteLength} bytes for shape [${info.shape}] of ${info.dtype}`);
    if (info.data.buffer !== m.bytes.buffer || info.data.byteOffset + info.data.byteLength > m.bytes.byteOffset + m.bytes.byteLength) throw new Error(`tensor ${name}: data outside the file`);
    covered += info.data.byteLength;
  }
  if (covered !== m.bytes.length - headerEndOf(m.bytes)) throw new Error(`the tensors cover ${covered} bytes of a ${m.bytes.length - headerEndOf(m.bytes)}-byte data area`);
  // What parse accepts, the tensor side must load (or refuse with a SafetensorsError).
  try {
    torch.dispose([...load(m.bytes, "fuzz").values()]);
  } catch (err) {
    if (!(err instanceof SafetensorsError)) throw new Error(`load threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  return "parsed";
}

// ---- the worker and its parent ----

interface Summary {
  seed: number;
  iterations: number;
  parsed: number;
  rejected: number;
  kinds: Record<string, { cases: number; parsed: number; rejected: number; failed: number; ms: number }>;
  /** The first failures (case, kind, what went wrong); `failed` counts them all. */
  failures: { case: number; kind: string; error: string }[];
  failed: number;
  slowest: { case: number; kind: string; ms: number };
  seconds: number;
}

/** Runs the cases in this process, writing each case's number to stdout before it runs. */
function work(seed: number, iterations: number, abortAt: number | null): Summary {
  const src = baseFile();
  const s: Summary = { seed, iterations, parsed: 0, rejected: 0, kinds: {}, failures: [], failed: 0, slowest: { case: -1, kind: "", ms: 0 }, seconds: 0 };
  for (const k of KINDS) s.kinds[k] = { cases: 0, parsed: 0, rejected: 0, failed: 0, ms: 0 };
  const start = performance.now();
  for (let i = 0; i < iterations; i++) {
    writeSync(1, `${i}\n`);
    if (i === abortAt) process.abort();
    const m = mutant(src, seed, i);
    const kind = s.kinds[m.kind]!;
    kind.cases++;
    const t0 = performance.now();
    try {
      const outcome = check(m);
      s[outcome]++;
      kind[outcome]++;
    } catch (err) {
      s.failed++;
      kind.failed++;
      if (s.failures.length < 20) s.failures.push({ case: i, kind: m.kind, error: err instanceof Error ? err.message.slice(0, 300) : String(err) });
    }
    const ms = performance.now() - t0;
    kind.ms += ms;
    if (ms > s.slowest.ms) s.slowest = { case: i, kind: m.kind, ms: Number(ms.toFixed(1)) };
  }
  for (const k of Object.values(s.kinds)) k.ms = Math.round(k.ms);
  s.seconds = Number(((performance.now() - start) / 1000).toFixed(2));
  return s;
}

interface Options {
  iterations: number;
  seed: number;
  case: number | null;
  worker: boolean;
  abortAt: number | null;
  timeoutS: number | null;
}

function options(argv: string[]): Options {
  const o: Options = { iterations: Number(process.env.DIFFPRUNE_FUZZ_ITERATIONS ?? 100_000), seed: 20240611, case: null, worker: false, abortAt: null, timeoutS: null };
  const count = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === "" || !Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} takes a non-negative integer, not ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--worker") o.worker = true;
    else if (flag === "--iterations") o.iterations = count(flag, argv[++i]);
    else if (flag === "--seed") o.seed = count(flag, argv[++i]);
    else if (flag === "--case") o.case = count(flag, argv[++i]);
    else if (flag === "--abort-at") o.abortAt = count(flag, argv[++i]); // tests that an abort is reported
    else if (flag === "--timeout") o.timeoutS = count(flag, argv[++i]);
    else throw new Error(`unknown option ${flag} (use --iterations N, --seed S, --case I, --timeout SECONDS)`);
  }
  if (!Number.isSafeInteger(o.iterations) || o.iterations < 1) throw new Error(`DIFFPRUNE_FUZZ_ITERATIONS must be a positive integer, not ${process.env.DIFFPRUNE_FUZZ_ITERATIONS}`);
  return o;
}

/** Runs the worker as a child; its death or a hang is reported with the case it was on. */
function supervise(o: Options): Promise<number> {
  const args = [fileURLToPath(import.meta.url), "--worker", "--iterations", String(o.iterations), "--seed", String(o.seed)];
  if (o.abortAt !== null) args.push("--abort-at", String(o.abortAt));
  // Generous: ~0.2 ms a case on an idle machine; a hang is what this catches, not slowness.
  const timeoutS = o.timeoutS ?? 120 + Math.ceil(o.iterations / 100);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let current = -1;
  let tail = "";
  let summary: Summary | null = null;
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (tail + chunk.toString()).split("\n");
    tail = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("{")) summary = JSON.parse(line) as Summary;
      else if (line !== "") current = Number(line);
    }
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutS * 1000);
  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const repro = `reproduce it with: node dist/bench/fuzz.js --seed ${o.seed} --case ${current}`;
      if (timedOut) {
        console.error(`fuzz: case ${current} (seed ${o.seed}) was still running after ${timeoutS} s (a hang?); ${repro}`);
        return resolve(2);
      }
      if (signal !== null || summary === null) {
        console.error(`fuzz: the worker died (${signal ?? `exit ${code}`}) during case ${current} of ${o.iterations} (seed ${o.seed}); ${repro}`);
        return resolve(2);
      }
      const s: Summary = summary;
      console.log(JSON.stringify(s));
      if (s.failed > 0) {
        console.error(`fuzz: ${s.failed} of ${s.iterations} cases failed; the first:`);
        for (const f of s.failures) console.error(`  case ${f.case} (${f.kind}): ${f.error}`);
        console.error(`reproduce one with: node dist/bench/fuzz.js --seed ${s.seed} --case N`);
        return resolve(1);
      }
      console.error(`fuzz: ${s.iterations} cases in ${s.seconds} s: ${s.parsed} parsed, ${s.rejected} refused with a SafetensorsError, none failed`);
      resolve(0);
    });
  });
}

/** One case in this process: what it is, its outcome, and its bytes (base64) to keep as a regression file. */
function single(o: Options & { case: number }): number {
  const m = mutant(baseFile(), o.seed, o.case);
  let outcome: string;
  let failed = false;
  try {
    outcome = check(m);
  } catch (err) {
    outcome = `failed: ${err instanceof Error ? err.message : String(err)}`;
    failed = true;
  }
  console.log(JSON.stringify({ seed: o.seed, case: o.case, kind: m.kind, expect: String(m.expect), outcome, bytes: Buffer.from(m.bytes).toString("base64") }));
  return failed ? 1 : 0;
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = options(process.argv.slice(2));
  } catch (err) {
    console.error(`fuzz: ${(err as Error).message}`);
    process.exit(2);
  }
  if (o.worker) {
    writeSync(1, JSON.stringify(work(o.seed, o.iterations, o.abortAt)) + "\n");
    return;
  }
  if (o.case !== null) process.exitCode = single({ ...o, case: o.case });
  else process.exitCode = await supervise(o);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
