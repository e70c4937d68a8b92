// SSIM against pytorch_msssim's own numbers (the shared fixture), and its basic properties.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { gaussianWindow, ssim } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

describe("ssim", () => {
  const f = loadFile(fixture("ssim.safetensors"));
  const [a, b, c] = ["a", "b", "c"].map((k) => f.get(k)!);

  test("equals pytorch_msssim.ssim(data_range=1, size_average=False) on the fixture", () => {
    assertClose(ssim(a!, b!), f.get("ssim_ab")!, 1e-5, "ssim(a, b)");
    assertClose(ssim(a!, c!), f.get("ssim_ac")!, 1e-5, "ssim(a, c)");
  });

  test("an image against itself is 1; SSIM is symmetric", () => {
    assertClose(ssim(a!, a!), [1, 1, 1, 1], 1e-6, "ssim(a, a)");
    assertClose(ssim(b!, a!), ssim(a!, b!), 1e-6, "ssim(b, a)");
  });

  test("the window is pytorch_msssim's normalised 11-tap Gaussian", () => {
    const w = gaussianWindow().toArray();
    assert.equal(w.length, 11);
    assertClose([w.reduce((s, v) => s + v, 0)], [1], 1e-6, "sum");
    const g = (x: number) => Math.exp(-(x * x) / (2 * 1.5 * 1.5));
    const norm = Array.from({ length: 11 }, (_, i) => g(i - 5)).reduce((s, v) => s + v, 0);
    assertClose(w, Array.from({ length: 11 }, (_, i) => g(i - 5) / norm), 1e-7, "taps");
  });

  test("float64 images give the same values; mismatched shapes are an error", () => {
    assertClose(ssim(a!.double(), b!.double()), f.get("ssim_ab")!, 1e-5, "float64");
    assert.throws(() => ssim(a!, torch.zeros([4, 3, 16, 16])), /same shape/);
  });
});
