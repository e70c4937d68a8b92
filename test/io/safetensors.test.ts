// safetensors: bit-exact round trips, the reference's layout, the Python library's files,
// half-float widening, and clear errors for corrupt files.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile, parse, saveFile, serialize, SafetensorsError } from "../../src/io/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";

const dir = scratchDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const bitsOf = (t: torch.Tensor): Uint8Array => {
  const a = t.toTypedArray();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
};

/** A file from a header given as text and a data area, for corrupt-file tests. */
function fileWith(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(header, "utf8");
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("round trip", () => {
  test("float32, float64 and int64 come back bit-exact (NaN payloads, -0, extremes)", () => {
    const f32 = new Uint32Array([0x7fc00001, 0xffc12345, 0x7f800001, 0x80000000, 0x7f7fffff, 0x00000001, 0xff800000, 0x3f800000]);
    const f64 = new BigUint64Array([0x7ff8000000000abcn, 0xfff0000000000001n, 0x8000000000000000n, 0x7fefffffffffffffn, 1n, 0x3ff0000000000000n]);
    const i64 = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, -1n, 0n, 9007199254740993n]);
    const tensors = {
      f32: torch.tensor(new Float32Array(f32.buffer), { shape: [2, 4] }),
      f64: torch.tensor(new Float64Array(f64.buffer), { shape: [3, 2] }),
      i64: torch.tensor(i64),
    };
    const path = join(dir, "bits.safetensors");
    saveFile(tensors, path);
    const back = loadFile(path);
    assert.deepEqual([...back.keys()].sort(), ["f32", "f64", "i64"]);
    assert.deepEqual(bitsOf(back.get("f32")!), new Uint8Array(f32.buffer));
    assert.deepEqual(bitsOf(back.get("f64")!), new Uint8Array(f64.buffer));
    assert.deepEqual(back.get("i64")!.toTypedArray(), i64);
    assert.deepEqual(back.get("f32")!.shape, [2, 4]);
    assert.equal(back.get("f64")!.dtype, "float64");
    assert.equal(back.get("i64")!.dtype, "int64");
  });

  test("empty tensors, 0-d scalars, int32, uint8 and bool", () => {
    const tensors = new Map([
      ["empty", torch.tensor(new Float32Array(0), { shape: [0, 3] })],
      ["scalar", torch.tensor(new Float64Array([-2.5]), { shape: [] })],
      ["i32", torch.tensor(new Int32Array([-7, 2 ** 31 - 1]))],
      ["u8", torch.tensor(new Uint8Array([0, 255, 9]))],
      ["mask", torch.tensor(new Uint8Array([1, 0, 1]), { dtype: "bool" })],
    ]);
    const path = join(dir, "small.safetensors");
    saveFile(tensors, path);
    const back = loadFile(path);
    assert.deepEqual(back.get("empty")!.shape, [0, 3]);
    assert.equal(back.get("empty")!.dtype, "float32");
    assert.deepEqual(back.get("scalar")!.shape, []);
    assert.equal(back.get("scalar")!.item(), -2.5);
    assert.deepEqual(back.get("i32")!.toArray(), [-7, 2 ** 31 - 1]);
    assert.deepEqual(back.get("u8")!.toArray(), [0, 255, 9]);
    assert.equal(back.get("mask")!.dtype, "bool");
    assert.deepEqual(back.get("mask")!.toArray(), [1, 0, 1]);
  });

  test("metadata round trips, and the header is padded with spaces to 8 bytes", () => {
    const metadata = { format: "pt", note: "ünïcode \"quoted\"", "0": "integer-like key" };
    const bytes = serialize({ w: torch.tensor(new Float32Array([1, 2, 3])) }, metadata);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const header = Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8");
    assert.match(header, /^\{"__metadata__":\{.*\}\} *$/);
    assert.equal(bytes.length, 8 + n + 12);
    assert.deepEqual(parse(bytes).metadata, metadata);
  });

  test("tensors are laid out by descending dtype alignment then name, with no gaps", () => {
    const bytes = serialize({
      b: torch.tensor(new Float32Array([1])),
      a: torch.tensor(new Float32Array([2, 3])),
      flag: torch.tensor(new Uint8Array([1]), { dtype: "bool" }),
      step: torch.tensor(new BigInt64Array([5n])),
      "ä": torch.tensor(new Float32Array([4])), // UTF-8 0xC3 sorts after ASCII, as in Rust
    });
    const { tensors } = parse(bytes);
    assert.deepEqual([...tensors.keys()], ["step", "a", "b", "ä", "flag"]);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString()) as Record<string, { data_offsets: number[] }>;
    assert.deepEqual(header["step"]!.data_offsets, [0, 8]);
    assert.deepEqual(header["a"]!.data_offsets, [8, 16]);
    assert.deepEqual(header["ä"]!.data_offsets, [20, 24]);
    assert.deepEqual(header["flag"]!.data_offsets, [24, 25]);
    assert.equal(bytes.length, 8 + n + 25);
  });

  test("saving a loaded reference file reproduces it byte for byte", () => {
    const path = fixture("unet-tiny", "diffusion_pytorch_model.safetensors");
    const original = readFileSync(path);
    assert.deepEqual(Buffer.from(serialize(loadFile(path))), original);
  });
});

describe("reference files (Python safetensors)", () => {
  test("unet-tiny loads with the checkpoint's names and shapes", () => {
    const m = loadFile(fixture("unet-tiny", "diffusion_pytorch_model.safetensors"));
    assert.equal(m.size, 144);
    assert.deepEqual(m.get("conv_in.weight")!.shape, [32, 1, 3, 3]);
    assert.deepEqual(m.get("conv_out.weight")!.shape, [1, 32, 3, 3]);
    assert.deepEqual(m.get("down_blocks.1.attentions.0.to_q.weight")!.shape, [64, 64]);
    assert.deepEqual(m.get("mid_block.resnets.0.time_emb_proj.weight")!.shape, [64, 128]);
    for (const [name, t] of m) {
      assert.equal(t.dtype, "float32", name);
      assert.ok(t.toArray().every(Number.isFinite), `${name} has non-finite values`);
    }
    // Random weights, so a zero-filled or misaligned read would show as all-equal values.
    const w = m.get("conv_in.weight")!.toArray();
    assert.ok(new Set(w).size > 200);
  });

  test("ssim.safetensors: images in [0, 1] and SSIM values in (0, 1]", () => {
    const m = loadFile(fixture("ssim.safetensors"));
    assert.deepEqual([...m.keys()].sort(), ["a", "b", "c", "ssim_ab", "ssim_ac"]);
    for (const k of ["a", "b", "c"]) {
      assert.deepEqual(m.get(k)!.shape, [4, 3, 32, 32]);
      assert.ok(m.get(k)!.toArray().every((v: number) => v >= 0 && v <= 1), k);
    }
    assert.deepEqual(m.get("ssim_ab")!.shape, [4]);
    assert.ok(m.get("ssim_ab")!.toArray().every((v: number) => v > 0 && v <= 1));
  });
});

describe("half floats", () => {
  test("F16 and BF16 entries load as float32 with the right values", () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x8000]);
    const bf16 = new Uint16Array([0x3f80, 0xc000, 0x4049, 0x7f7f, 0xff80]);
    const data = new Uint8Array(f16.byteLength + bf16.byteLength);
    data.set(new Uint8Array(f16.buffer), 0);
    data.set(new Uint8Array(bf16.buffer), f16.byteLength);
    let header = JSON.stringify({
      h: { dtype: "F16", shape: [7], data_offsets: [0, 14] },
      bh: { dtype: "BF16", shape: [5], data_offsets: [14, 24] },
    });
    if (header.length % 2 === 0) header += " "; // odd length: the data starts unaligned
    const path = join(dir, "half.safetensors");
    writeFileSync(path, fileWith(header, data));
    const m = loadFile(path);
    assert.equal(m.get("h")!.dtype, "float32");
    assert.deepEqual(m.get("h")!.toArray(), [1, -2, 0.5, 65504, 2 ** -24, Infinity, -0]);
    assert.equal(m.get("bh")!.dtype, "float32");
    assert.deepEqual(m.get("bh")!.toArray(), [1, -2, 3.140625, 3.3895313892515355e38, -Infinity]);
  });
});

describe("corrupt files give clear errors", () => {
  const f32 = (n: number): Uint8Array => new Uint8Array(4 * n);
  const entry = (dtype: string, shape: number[], begin: number, end: number): object => ({ dtype, shape, data_offsets: [begin, end] });
  const expectError = (bytes: Uint8Array, message: RegExp): void =>
    assert.throws(() => parse(bytes, "model.safetensors"), (err: unknown) => {
      if (!(err instanceof SafetensorsError)) assert.fail(`not a SafetensorsError: ${String(err)}`);
      assert.match(err.message, /^model\.safetensors: /);
      assert.match(err.message, message);
      return true;
    });

  test("shorter than 8 bytes", () => expectError(new Uint8Array(5), /has 5 bytes, too short/));

  test("header length past the end, or absurd", () => {
    const good = fileWith(JSON.stringify({ w: entry("F32", [2], 0, 8) }), f32(2));
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(0, BigInt(good.length), true);
    expectError(bad, /header length \d+ runs past the end of the file/);
    new DataView(bad.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
    expectError(bad, /header length 18446744073709551615 is over the 100000000-byte limit/);
  });

  test("truncated data", () => {
    const good = fileWith(JSON.stringify({ w: entry("F32", [4], 0, 16) }), f32(4));
    expectError(good.subarray(0, good.length - 3), /tensor "w": data_offsets \[0, 16\] run past the data area of 13 bytes/);
    expectError(good.subarray(0, 20), /header length \d+ runs past the end/);
  });

  test("header not JSON, not UTF-8, not an object", () => {
    expectError(fileWith('{"w": {"dtype": "F32",'), /header is not valid JSON/);
    expectError(fileWith("[1, 2]"), /does not start with '\{'/);
    expectError(fileWith("{} junk"), /header is not valid JSON/);
    const bytes = fileWith('{"a":1}');
    bytes[10] = 0xff;
    expectError(bytes, /header is not valid UTF-8/);
  });

  test("entries with missing or wrong fields", () => {
    expectError(fileWith(JSON.stringify({ w: { shape: [1], data_offsets: [0, 4] } }), f32(1)), /tensor "w": entry has no dtype/);
    expectError(fileWith(JSON.stringify({ w: { dtype: "F32", data_offsets: [0, 4] } }), f32(1)), /tensor "w": entry has no shape/);
    expectError(fileWith(JSON.stringify({ w: { dtype: "F32", shape: [1] } }), f32(1)), /tensor "w": entry has no data_offsets/);
    expectError(fileWith(JSON.stringify({ w: 7 })), /tensor "w": entry is 7, not an object/);
    expectError(fileWith(JSON.stringify({ w: entry("F33", [1], 0, 4) }), f32(1)), /tensor "w": unknown dtype "F33"/);
    expectError(fileWith(JSON.stringify({ w: entry("F32", [-1], 0, 4) }), f32(1)), /tensor "w": shape \[-1\] is not a list of non-negative integers/);
    expectError(fileWith(JSON.stringify({ w: entry("F32", [1.5], 0, 4) }), f32(1)), /shape \[1.5\] is not/);
    expectError(fileWith(JSON.stringify({ w: { dtype: "F32", shape: [1], data_offsets: [0] } }), f32(1)), /data_offsets \[0\] is not two non-negative integers/);
    expectError(fileWith(JSON.stringify({ w: entry("F32", [0], 4, 0) }), f32(1)), /data_offsets \[4, 0\] begin after they end/);
    expectError(
      fileWith(JSON.stringify({ "conv_in.weight": entry("F32", [3, 3], 0, 100) }), new Uint8Array(100)),
      /tensor "conv_in.weight": data_offsets \[0, 100\] hold 100 bytes but shape \[3, 3\] of F32 needs 36/,
    );
    // numel that overflows a double's integers must not pass by rounding
    expectError(fileWith(JSON.stringify({ w: entry("U8", [2 ** 26, 2 ** 26, 2 ** 26], 0, 0) })), /needs 302231454903657293676544$/);
  });

  test("overlapping tensors, gaps, trailing bytes", () => {
    expectError(
      fileWith(JSON.stringify({ a: entry("F32", [2], 0, 8), b: entry("F32", [2], 4, 12) }), f32(3)),
      /tensor "b": data_offsets \[4, 12\] overlap tensor "a", which ends at 8/,
    );
    expectError(
      fileWith(JSON.stringify({ a: entry("F32", [1], 0, 4), b: entry("F32", [1], 8, 12) }), f32(3)),
      /tensor "b": data_offsets \[8, 12\] leave a gap: bytes \[4, 8\)/,
    );
    expectError(fileWith(JSON.stringify({ a: entry("F32", [1], 0, 4) }), f32(2)), /data area has 8 bytes but the tensors cover only 4/);
  });

  test("nesting deeper than serde_json's 128 levels is refused, at any depth (no stack overflow)", () => {
    for (const depth of [129, 5_000, 50_000]) {
      expectError(fileWith(`{"__metadata__":{"a":"1"},"x":${"[".repeat(depth)}${"]".repeat(depth)}}`), /header nests arrays or objects deeper than 128 levels/);
    }
    // brackets inside strings do not count
    const ok = parse(fileWith(`{"__metadata__":{"a":"${"[".repeat(300)}"}}`), "m");
    assert.equal(ok.metadata.a, "[".repeat(300));
  });

  test("a key twice in one object (JSON.parse would keep the last silently)", () => {
    const w = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
    expectError(fileWith(`{"w":${w},"w":${w}}`, f32(1)), /the header names tensor "w" twice: a JSON reader keeps only one/);
    // the same name spelled with an escape is the same key
    expectError(fileWith(`{"w":${w}, "\\u0077" :${w}}`, f32(1)), /names tensor "w" twice/);
    expectError(fileWith(`{"__metadata__":{},"__metadata__":{}}`), /names __metadata__ twice/);
    expectError(fileWith('{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /tensor "w": key "dtype" appears twice/);
    expectError(fileWith('{"__metadata__":{"a":"1","a":"2"}}'), /__metadata__: key "a" appears twice/);
    // keys that only look alike, and names inside strings and lists, are not repeats
    const ok = parse(fileWith(`{"__metadata__":{"w":"w","x":"\\"w\\":"},"w":${w},"W":${w.replace("0,4", "4,8")}}`, f32(2)), "m");
    assert.deepEqual([...ok.tensors.keys()], ["w", "W"]);
    assert.equal(ok.metadata.x, '"w":');
  });

  test("metadata values must be strings", () => {
    expectError(fileWith(JSON.stringify({ __metadata__: { epoch: 3 } })), /__metadata__ "epoch" is 3, not a string/);
    expectError(fileWith(JSON.stringify({ __metadata__: ["x"] })), /__metadata__ is \["x"\], not an object/);
  });

  test("loadFile names the file and rejects dtypes it cannot hold", () => {
    const path = join(dir, "i16.safetensors");
    writeFileSync(path, fileWith(JSON.stringify({ w: entry("I16", [2], 0, 4) }), new Uint8Array(4)));
    assert.throws(() => loadFile(path), { name: "SafetensorsError", message: `${path}: tensor "w": dtype I16 is not supported (use F32, F64, F16, BF16, I64, I32, U8 or BOOL)` });
    assert.throws(() => loadFile(join(dir, "missing.safetensors")), /ENOENT/);
  });

  test("serialize refuses a tensor named __metadata__", () => {
    assert.throws(() => serialize({ __metadata__: torch.tensor(new Float32Array(1)) }), /"__metadata__" is reserved/);
  });
});
