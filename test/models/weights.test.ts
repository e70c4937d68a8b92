// A checkpoint's tensors before they become parameters: NaN, +Inf or -Inf anywhere, and integer
// or bool tensors, are WeightsErrors naming the file and the tensor; half floats still load.
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { loadFile, parse, saveFile, type TensorInfo } from "../../src/io/index.js";
import { checkWeights, UNet2DModel, WeightsError, WEIGHTS_NAME } from "../../src/models/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-weights-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of unet-tiny whose tensor `name` is replaced by `change(original)`. */
function tinyWith(folder: string, name: string, change: (t: Tensor) => Tensor): string {
  const dir = join(scratch, folder);
  cpSync(fixture("unet-tiny"), dir, { recursive: true });
  const weights = loadFile(fixture("unet-tiny", WEIGHTS_NAME));
  weights.set(name, change(weights.get(name)!));
  saveFile(weights, join(dir, WEIGHTS_NAME));
  return dir;
}

/** A safetensors file of stored entries, in the map's order (any dtype, as another writer would). */
function fileOf(tensors: Map<string, TensorInfo>): Uint8Array {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors.values()) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

/** `t` with element `i` (of the flattened tensor) set to `v`. */
function withValue(t: Tensor, i: number, v: number): Tensor {
  const a = Float32Array.from(t.toTypedArray() as Float32Array);
  a[i] = v;
  return torch.tensor(a, { shape: [...t.shape] });
}

describe("fromPretrained refuses weights that are not finite floats", () => {
  const cases: [string, string, (t: Tensor) => Tensor, RegExp][] = [
    ["all NaN", "conv_in.weight", (t) => torch.full([...t.shape], NaN), /tensor "conv_in\.weight" is all NaN \(288 values\): the weights are corrupt/],
    ["one NaN", "mid_block.resnets.0.conv1.weight", (t) => withValue(t, 7, NaN), /tensor "mid_block\.resnets\.0\.conv1\.weight" holds 1 NaN of its 36864 values/],
    ["+Inf", "conv_out.bias", (t) => withValue(t, 0, Infinity), /tensor "conv_out\.bias" holds 1 \+Inf of its 1 values/],
    ["-Inf and NaN", "time_embedding.linear_1.weight", (t) => withValue(withValue(t, 0, -Infinity), 1, NaN), /holds 1 NaN, 1 -Inf of its 4096 values/],
    ["an int32 conv weight", "conv_in.weight", (t) => t.to("int32"), /tensor "conv_in\.weight" is int32 but the UNet's parameters are floating point/],
    ["a bool bias", "conv_in.bias", (t) => t.gt(0), /tensor "conv_in\.bias" is bool but the UNet's parameters are floating point/],
    ["an int64 norm weight", "conv_norm_out.weight", (t) => t.to("int64"), /is int64 but/],
  ];
  for (const [name, key, change, message] of cases)
    test(name, () => {
      const dir = tinyWith(name.replace(/\W+/g, "-"), key, change);
      assert.throws(() => UNet2DModel.fromPretrained(dir), (e: unknown) => {
        assert.ok(e instanceof WeightsError, String(e));
        assert.ok(e.message.startsWith(`${join(dir, WEIGHTS_NAME)}: `), e.message);
        assert.match(e.message, message);
        return true;
      });
    });

  test("float64 weights load (as float32), and so do the fixture's", () => {
    const dir = tinyWith("f64", "conv_in.weight", (t) => t.to("float64"));
    const model = UNet2DModel.fromPretrained(dir);
    assert.equal(model.stateDict().get("conv_in.weight")!.dtype, "float32");
    model.dispose();
  });

  test("F16 and BF16 weights load as float32", () => {
    const dir = join(scratch, "half");
    cpSync(fixture("unet-tiny"), dir, { recursive: true });
    // conv_in.bias (32) as F16 ones (0x3c00) and conv_out.bias (1) as BF16 one (0x3f80); the rest as stored
    const { tensors } = parse(readFileSync(fixture("unet-tiny", WEIGHTS_NAME)));
    const ones = (bits: number, n: number): Uint8Array => new Uint8Array(new Uint16Array(n).fill(bits).buffer);
    tensors.set("conv_in.bias", { dtype: "F16", shape: [32], data: ones(0x3c00, 32) });
    tensors.set("conv_out.bias", { dtype: "BF16", shape: [1], data: ones(0x3f80, 1) });
    writeFileSync(join(dir, WEIGHTS_NAME), fileOf(tensors));
    const model = UNet2DModel.fromPretrained(dir);
    const state = model.stateDict();
    assert.equal(state.get("conv_in.bias")!.dtype, "float32");
    assert.deepEqual(state.get("conv_in.bias")!.toArray(), new Array(32).fill(1));
    assert.deepEqual(state.get("conv_out.bias")!.toArray(), [1]);
    model.dispose();
  });
});

test("checkWeights looks at every tensor and names the file", () => {
  const ok = torch.tensor(new Float32Array([0, -1, 3.4e38]));
  const bad = torch.tensor(new Float64Array([1, Infinity]));
  assert.doesNotThrow(() => checkWeights(new Map([["a", ok]]), "f.safetensors"));
  assert.throws(() => checkWeights(new Map([["a", ok], ["b", bad]]), "f.safetensors"), { name: "WeightsError", message: /^f\.safetensors: tensor "b" holds 1 \+Inf of its 2 values/ });
  assert.doesNotThrow(() => checkWeights(new Map([["empty", torch.tensor(new Float32Array(0))]]), "f.safetensors"));
});
