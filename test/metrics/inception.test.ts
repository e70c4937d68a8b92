// Inception-v3 in pytorch-fid's layout, run with random weights: its shapes, names and parameter
// count, the weight-file names it accepts, and pytorch-fid's bilinear resize.
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { saveFile, serialize } from "../../src/io/index.js";
import { bilinearMatrix, InceptionExtractor, inceptionStateDict, InceptionV3, resizeBilinear } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";
import { scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-inception-");
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("resizeBilinear (F.interpolate, bilinear, align_corners=False)", () => {
  test("upsampling and downsampling a ramp give PyTorch's values", () => {
    const ramp = (n: number) => torch.arange(0, n, 1, { dtype: "float32" }).reshape(1, 1, 1, n).expand(1, 1, 2, n);
    // torch: F.interpolate(torch.arange(4.).view(1, 1, 1, 4), size=(1, 8), mode="bilinear")
    assertClose(resizeBilinear(ramp(4), 1, 8), [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3], 1e-6, "4 -> 8");
    assertClose(resizeBilinear(ramp(8), 1, 4), [0.5, 2.5, 4.5, 6.5], 1e-6, "8 -> 4");
  });

  test("rows of the interpolation matrix sum to 1 (constants stay constant); same size is the identity", () => {
    assertClose(bilinearMatrix(32, 299).sum(1), Array(299).fill(1), 1e-6, "row sums");
    const x = torch.rand([2, 3, 5, 7]);
    assertClose(resizeBilinear(x, 5, 7), x, 1e-6, "identity");
  });
});

describe("InceptionV3 (pytorch-fid, random weights)", () => {
  torch.manualSeed(0);
  const model = torch.noGrad(() => new InceptionV3());
  after(() => model.dispose());

  test("torchvision's parameter names and count (Inception3 without aux logits and fc)", () => {
    const names = [...model.stateDict().keys()];
    for (const name of ["Conv2d_1a_3x3.conv.weight", "Conv2d_4a_3x3.bn.running_var", "Mixed_5b.branch5x5_2.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.bias", "Mixed_7c.branch3x3dbl_3b.conv.weight"])
      assert.ok(names.includes(name), name);
    assert.equal(model.numParameters(), 21_785_568);
    assert.deepEqual(model.stateDict().get("Mixed_6b.branch7x7_2.conv.weight")!.shape, [128, 128, 1, 7]);
  });

  test("a 32x32 gray image gives 2048 finite pool features", () => {
    const f = model.forward(torch.rand([1, 1, 32, 32]).mul(2).sub(1));
    assert.deepEqual(f.shape, [1, 2048]);
    assert.equal(f.isfinite().float().min().item(), 1, "finite");
    assert.ok(f.min().item() >= 0, "after ReLU and average pooling");
  });

  test("loads a safetensors file with pytorch-fid's wrapper names; fc, aux and BN counters are ignored", () => {
    const state = new Map<string, torch.Tensor>();
    const wrapper: Record<string, string> = { Conv2d_1a_3x3: "blocks.0.0", Mixed_5b: "blocks.2.0", Mixed_7c: "blocks.3.2" };
    for (const [k, t] of model.stateDict()) {
      const [head, ...rest] = k.split(".");
      state.set(wrapper[head!] ? `${wrapper[head!]}.${rest.join(".")}` : k, t);
    }
    state.set("fc.weight", torch.zeros([1008, 2048]));
    state.set("Conv2d_1a_3x3.bn.num_batches_tracked", torch.zeros([], { dtype: "int64" }));
    const file = join(scratch, "inception.safetensors");
    writeFileSync(file, serialize(state)); // 87 MB: skip saveFile's fsync, a scratch file needs no durability
    const extractor = InceptionExtractor.load(file);
    try {
      assert.equal(extractor.name, "inception-v3-fid");
      assert.match(extractor.weightsHash, /^[0-9a-f]{64}$/);
      assert.ok(torch.equal(extractor.model.stateDict().get("Mixed_7c.branch_pool.conv.weight")!, model.stateDict().get("Mixed_7c.branch_pool.conv.weight")!));
      assert.ok(torch.equal(extractor.model.stateDict().get("Conv2d_1a_3x3.bn.running_mean")!, model.stateDict().get("Conv2d_1a_3x3.bn.running_mean")!));
    } finally {
      extractor.model.dispose();
    }
  });

  test("a weights file that is not Inception's says what was expected", () => {
    const file = join(scratch, "wrong.safetensors");
    saveFile({ "conv.weight": torch.zeros([2, 2]) }, file);
    assert.throws(() => InceptionExtractor.load(file), /pt_inception-2015-12-05/);
    assert.deepEqual([...inceptionStateDict(new Map([["blocks.1.1.bn.bias", torch.zeros([1])]])).keys()], ["Conv2d_4a_3x3.bn.bias"]);
  });
});
