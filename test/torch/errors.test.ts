// Bad input throws a JS Error carrying libtorch's message (no C++ backtrace); the process lives on.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { Tensor } from "../../src/torch/tensor.js";

/** Asserts fn throws an Error (of `type`) whose message matches, and has no C++ frames. */
function throwsWith(fn: () => unknown, message: RegExp, type: ErrorConstructor = Error): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    assert.match(err.message, message);
    assert.doesNotMatch(err.message, /Exception raised from|frame #\d/);
    return true;
  });
}

describe("errors", () => {
  test("shape mismatches", () => {
    throwsWith(() => torch.ones([2, 3]).add(torch.ones([4])), /^add: The size of tensor a \(3\) must match the size of tensor b \(4\)/);
    throwsWith(() => torch.ones([2, 3]).matmul(torch.ones([2, 3])), /^matmul: .*cannot be multiplied/);
    throwsWith(() => torch.ones([6]).view(4), /^view: shape '\[4\]' is invalid for input of size 6/);
    throwsWith(
      () => torch.conv2d(torch.ones([1, 3, 8, 8]), torch.ones([4, 2, 3, 3])),
      /^conv2d: Given groups=1, weight of size \[4, 2, 3, 3\], expected input\[1, 3, 8, 8\] to have 2 channels/,
    );
    throwsWith(() => torch.groupNorm(torch.ones([1, 6, 2, 2]), 4), /^groupNorm: .*divisible/);
    throwsWith(() => torch.cat([torch.ones([2, 2]), torch.ones([3, 3])], 0), /^cat: Sizes of tensors must match/);
    throwsWith(() => torch.ones([2]).transpose(0, 3), /^transpose: Dimension out of range/);
    throwsWith(() => torch.ones([2, 2]).item(), /^item: item\(\) needs a tensor with one element, this one has 4/, TypeError);
  });

  test("wrong dtypes", () => {
    throwsWith(() => torch.ones([2, 2]).matmul(torch.ones([2, 2], { dtype: "float64" })), /^matmul: expected .*(Float|Double)/);
    throwsWith(() => torch.ones([3]).indexSelect(0, torch.ones([1])), /^indexSelect: .*Expected dtype int32 or int64 for index/);
    throwsWith(() => torch.randn([2], { dtype: "int64" }), /^randn: .*(Long|not implemented)/);
    throwsWith(() => torch.zeros([2], { dtype: "complex" as never }), /^zeros: unknown dtype 'complex'/, TypeError);
    throwsWith(() => torch.tensor(new Uint16Array(2)), /Uint16Array needs its dtype/, TypeError);
  });

  test("disposed tensors", () => {
    const t = torch.ones([2]);
    t.dispose();
    assert.ok(t.isDisposed);
    throwsWith(() => t.add(1), /^add: Tensor is disposed$/, TypeError);
    throwsWith(() => t.toArray(), /Tensor is disposed/, TypeError);
    throwsWith(() => torch.cat([torch.ones([1]), t]), /^cat: Tensor is disposed \(element 1\)/, TypeError);
    t.dispose(); // twice is fine
    // a reused slot does not revive an old handle
    const fresh = torch.ones([2]);
    throwsWith(() => t.add(1), /Tensor is disposed/, TypeError);
    assert.deepEqual(fresh.toArray(), [1, 1]);
  });

  test("wrong argument types and counts reach the addon as TypeErrors", () => {
    const x = torch.ones([1, 1, 4, 4]);
    throwsWith(() => torch.conv2d(x, "weight" as never), /^conv2d: argument 1 must be a Tensor/, TypeError);
    throwsWith(() => native.add(x.handle, 1.5, 0), /^add: argument 1 must be a Tensor/, TypeError);
    throwsWith(() => native.add(-1, x.handle, 0), /^add: argument 0 must be a Tensor/, TypeError);
    throwsWith(() => (native.add as unknown as () => number)(), /^add: argument 0 must be a Tensor/, TypeError);
    throwsWith(() => native.zeros("3" as never, null, null), /^zeros: argument 0 must be an array of integers/, TypeError);
    throwsWith(() => torch.zeros([2.5]), /^zeros: argument 0 must be an array of integers/, TypeError);
    throwsWith(() => torch.zeros([-1]), /^zeros: shape entries must be non-negative/, TypeError);
    throwsWith(() => x.reshape(["a"] as never), /^reshape: argument 1 must be an array of integers/, TypeError);
    throwsWith(() => native.fromBuffer(new Float32Array(3), [2, 2], "float32", null), /^fromBuffer: data holds 12 bytes but shape \[2, 2\] of float32 needs 16/, TypeError);
    throwsWith(() => native.fromBuffer([1, 2] as never, [2], "float32", null), /^fromBuffer: argument 0 must be a typed array/, TypeError);
    throwsWith(() => torch.dropout(x, 1.5), /^dropout: dropout probability must be in \[0, 1\]/, TypeError);
    throwsWith(() => torch.mseLoss(x, x, "avg" as never), /^mseLoss: reduction must be/, TypeError);
    throwsWith(() => torch.manualSeed(-1), /the seed must be a non-negative integer/, RangeError);
    throwsWith(() => x.to("tpu" as never), /^to: unknown dtype 'tpu'/, TypeError);
    throwsWith(() => torch.zeros([1], { device: "gpu" as never }), /^zeros: .*(device|Device)/);
    throwsWith(() => new Tensor(12345678).add(1), /^add: argument 0 must be a Tensor/, TypeError);
  });

  test("autograd misuse", () => {
    throwsWith(() => torch.ones([2]).sum().backward(), /^backward: this tensor does not require grad/, TypeError);
    const w = torch.ones([2]).requiresGrad_();
    throwsWith(() => w.mul(2).backward(), /^backward: backward\(\) without a gradient needs a one-element/, TypeError);
    throwsWith(() => w.add_(1), /^add_: a leaf Variable that requires grad is being used in an in-place operation/);
    throwsWith(() => { w.grad = torch.ones([3]); }, /^setGrad: the gradient must match the tensor/, TypeError);
    const y = w.mul(w).sum();
    y.backward();
    throwsWith(() => y.backward(), /^backward: Trying to backward through the graph a second time/);
    throwsWith(() => torch.adamwStep([w], [torch.zeros([3])], [torch.zeros([2])], 1, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }), /^adamwStep: optimizer state 0 has shape \[3\]/, TypeError);
    throwsWith(() => torch.emaUpdate([w], [], 0.9), /^emaUpdate: params has 0 tensors but there are 1 parameters/, TypeError);
  });

  test("tidy rejects async functions and frees what it made", () => {
    const before = torch.memory().numTensors;
    assert.throws(() => torch.tidy(async () => torch.ones([1])), /synchronous/);
    assert.throws(() => torch.tidy(() => { torch.ones([2]); throw new Error("boom"); }), /boom/);
    assert.equal(torch.memory().numTensors, before);
  });

  test("the process lives on after all of the above", () => {
    assert.deepEqual(torch.ones([2]).add(1).toArray(), [2, 2]);
  });
});
