// Fuzzing the safetensors reader: thousands of mutated files must each parse to something
// self-consistent or throw a SafetensorsError; never crash, hang, or throw a non-Error.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { load, parse, serialize, SafetensorsError, type SafetensorsDType } from "../../src/io/index.js";
import { mulberry32 } from "../helpers/random.js";


const ITEM_SIZE: Partial<Record<SafetensorsDType, number>> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, BOOL: 1 };
const NUMBERS = ["0", "1", "-1", "7", "8", "24", "4294967296", "9007199254740993", "1e400", "-0", "2.5", "1e3", "18446744073709551615", "null", '"8"'];
const SPECIALS = [..."{}[]\",:0123456789 -.e", "\u00ff"];

function base(): Uint8Array {
  const tensors = {
    weight: torch.tensor(new Float32Array([1, -2, 3.5, 0, -0, 1e30]), { shape: [2, 3] }),
    steps: torch.tensor(new BigInt64Array([1n, -5n])),
    scale: torch.tensor(new Float64Array([0.25]), { shape: [] }),
    mask: torch.tensor(new Uint8Array([1, 0, 1]), { dtype: "bool" }),
    none: torch.tensor(new Float32Array(0), { shape: [0, 4] }),
  };
  const bytes = serialize(tensors, { format: "pt" });
  for (const t of Object.values(tensors)) t.dispose();
  return bytes;
}

function mutate(src: Uint8Array, rand: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rand() * n);
  const headerEnd = 8 + Number(new DataView(src.buffer, src.byteOffset).getBigUint64(0, true));
  let bytes = src.slice();
  switch (int(5)) {
    case 0: // byte flips in the header
      for (let k = 1 + int(4); k > 0; k--) {
        const at = 8 + int(headerEnd - 8);
        bytes[at] = rand() < 0.5 ? int(256) : SPECIALS[int(SPECIALS.length)]!.charCodeAt(0) & 0xff;
      }
      break;
    case 1: { // a random header length
      const choices = [BigInt(int(bytes.length + 16)), BigInt(int(2 ** 32)) * BigInt(int(2 ** 32)), 2n ** 63n, 2n ** 64n - 1n, 100_000_001n];
      new DataView(bytes.buffer).setBigUint64(0, choices[int(choices.length)]!, true);
      break;
    }
    case 2: // truncation
      bytes = bytes.slice(0, int(bytes.length));
      break;
    case 3: { // a number spliced over a number in the JSON (offsets, shapes)
      const text = Buffer.from(bytes.subarray(8, headerEnd)).toString("latin1");
      const runs = [...text.matchAll(/-?\d+/g)];
      const run = runs[int(runs.length)]!;
      const spliced = text.slice(0, run.index) + NUMBERS[int(NUMBERS.length)] + text.slice(run.index! + run[0].length);
      const json = Buffer.from(spliced.trimEnd().padEnd(Math.ceil(spliced.trimEnd().length / 8) * 8, " "), "latin1");
      bytes = new Uint8Array(8 + json.length + (src.length - headerEnd));
      new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
      bytes.set(json, 8);
      bytes.set(src.subarray(headerEnd), 8 + json.length);
      break;
    }
    case 4: // data bytes: must still parse
      for (let k = 1 + int(8); k > 0 && bytes.length > headerEnd; k--) bytes[headerEnd + int(bytes.length - headerEnd)] = int(256);
      break;
  }
  return bytes;
}

test("mutated files parse consistently or throw SafetensorsError", { timeout: 30_000 }, (t) => {
  const rand = mulberry32(20240611);
  const original = base();
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    const bytes = mutate(original, rand);
    let result: ReturnType<typeof parse>;
    try {
      result = parse(bytes, "fuzz");
    } catch (err) {
      if (!(err instanceof SafetensorsError)) assert.fail(`case ${i}: threw ${String(err)}, not a SafetensorsError`);
      assert.match(err.message, /^fuzz: /);
      rejected++;
      continue;
    }
    parsed++;
    let covered = 0;
    for (const [name, info] of result.tensors) {
      const numel = info.shape.reduce((a, b) => a * b, 1);
      assert.equal(info.data.byteLength, numel * (ITEM_SIZE[info.dtype] ?? 1), `case ${i}: tensor ${name}`);
      assert.ok(info.data.buffer === bytes.buffer && info.data.byteOffset + info.data.byteLength <= bytes.byteOffset + bytes.byteLength);
      covered += info.data.byteLength;
    }
    const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(covered, bytes.length - headerEnd, `case ${i}: tensors cover the data area`);
    // What parse accepts, the tensor side must load (or refuse with a clear error).
    try {
      for (const tensor of load(bytes, "fuzz").values()) tensor.dispose();
    } catch (err) {
      if (!(err instanceof SafetensorsError)) assert.fail(`case ${i}: load threw ${String(err)}`);
    }
  }
  t.diagnostic(`${parsed} parsed, ${rejected} rejected`);
  // Both outcomes must be exercised, or the fuzzer tests nothing.
  assert.ok(parsed > 2000, `only ${parsed} mutants parsed`);
  assert.ok(rejected > 8000, `only ${rejected} mutants rejected`);
});
