// Diff-Pruning's gradient loop on a stand-in model whose loss at each timestep is known:
// forward(x, t) = p * v_t everywhere, on images and noise of zeros, so loss_t = p^2 v_t^2 and
// d(loss_t)/dp = 2 p v_t^2. The loop must stop after the first t whose loss is below thr times the
// largest loss so far, with that step's gradient included. Calibration batches of the wrong shape
// are refused with messages that say what the model takes.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import type { UNet2DConfig, UNet2DModel } from "../../src/models/index.js";
import { accumulateGradients, drawCalibration, loadCalibration, saveCalibration } from "../../src/pruning/index.js";
import { CalibrationError, whyUnusable } from "../../src/pruning/calibration.js";
import { saveFile } from "../../src/io/index.js";
import { scratchDir } from "../helpers/fixtures.js";

// Exact in float32. loss_t = v_t^2: 0.015625, 1, 9 (the max), 6.25, 4, 2.25, 1, 0.5625, 0.25, ...
// With thr 0.05 the first loss below 0.45 is at t = 8; a global max (25 at t = 12) or a stop
// before the max (t = 0 is below 0.05 * 9) would give another T'.
const V = [0.125, 1, 3, 2.5, 2, 1.5, 1, 0.75, 0.5, 0.25, 0.125, 4, 5, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125];
const T = V.length;
const sumSquares = (upTo: number): number => V.slice(0, upTo + 1).reduce((s, v) => s + v * v, 0);

interface Stub {
  model: UNet2DModel;
  p: Tensor;
  /** The timesteps forward saw, in order. */
  seen: number[];
  evalCalls: number;
}

function stub(): Stub {
  const p = torch.keep(torch.ones([1]).requiresGrad_(true));
  const s: Stub = { model: undefined as unknown as UNet2DModel, p, seen: [], evalCalls: 0 };
  const fake = {
    config: { in_channels: 1, sample_size: 4 },
    eval() {
      s.evalCalls++;
      return fake;
    },
    parameters: () => [p],
    forward(x: Tensor, timesteps: Tensor): Tensor {
      assert.equal(timesteps.dtype, "int64");
      const ts = timesteps.toArray();
      assert.equal(ts.length, x.shape[0]);
      assert.ok(ts.every((t) => t === ts[0]), "one timestep for the whole batch");
      assert.equal(x.abs().max().item(), 0, "noised zeros are zeros");
      s.seen.push(ts[0]!);
      return p.mul(torch.full([...x.shape], V[ts[0]!]!));
    },
  };
  s.model = fake as unknown as UNet2DModel;
  return s;
}

describe("accumulateGradients: the timestep loop", () => {
  const scheduler = new DDPMScheduler({ num_train_timesteps: T });
  const images = torch.keep(torch.zeros([2, 1, 4, 4]));
  const noise = torch.keep(torch.zeros([2, 1, 4, 4]));

  test("thr 0.05 stops after t = 8, whose gradient is included", () => {
    const s = stub();
    s.p.grad = torch.tensor([100]); // stale: must be cleared first
    const steps: [number, number, number][] = [];
    const report = accumulateGradients(s.model, { images, noise, scheduler, thr: 0.05, onStep: (t, loss, total) => steps.push([t, loss, total]) });
    assert.equal(report.tPrime, 8);
    assert.equal(report.timesteps, T);
    assert.equal(report.thr, 0.05);
    assert.deepEqual(report.losses, V.slice(0, 9).map((v) => v * v));
    assert.deepEqual(s.seen, [0, 1, 2, 3, 4, 5, 6, 7, 8], "no forward after T'");
    assert.deepEqual(steps, report.losses.map((l, t) => [t, l, T]));
    assert.ok(s.evalCalls >= 1, "the model is put in eval mode");
    const g = s.p.grad!.item();
    assert.ok(Math.abs(g - 2 * sumSquares(8)) < 1e-4, `p.grad = ${g}, expected 2 * sum_{t<=8} v_t^2 = ${2 * sumSquares(8)}`);
  });

  test("stopBeforeBackward (ddpm_exp): stops at t = 8 without its gradient, T' = 7", () => {
    const s = stub();
    const report = accumulateGradients(s.model, { images, noise, scheduler, thr: 0.05, stopBeforeBackward: true });
    assert.equal(report.tPrime, 7);
    assert.deepEqual(report.losses, V.slice(0, 9).map((v) => v * v), "the stopping step's loss is still reported");
    const g = s.p.grad!.item();
    assert.ok(Math.abs(g - 2 * sumSquares(7)) < 1e-4, `p.grad = ${g}, expected 2 * sum_{t<=7} v_t^2 = ${2 * sumSquares(7)}`);
  });

  test("thr 0.5 stops at the first loss below half the max so far (t = 4)", () => {
    const s = stub();
    const report = accumulateGradients(s.model, { images, noise, scheduler, thr: 0.5 });
    assert.equal(report.tPrime, 4);
    assert.equal(report.losses.length, 5);
    assert.ok(Math.abs(s.p.grad!.item() - 2 * sumSquares(4)) < 1e-4);
  });

  test("thr null runs every timestep", () => {
    const s = stub();
    const report = accumulateGradients(s.model, { images, noise, scheduler, thr: null });
    assert.equal(report.tPrime, T - 1);
    assert.equal(report.thr, null);
    assert.deepEqual(report.losses, V.map((v) => v * v));
    assert.deepEqual(s.seen, Array.from({ length: T }, (_, t) => t));
    assert.ok(Math.abs(s.p.grad!.item() - 2 * sumSquares(T - 1)) < 1e-4);
  });

  test("thr 0 never stops early (no loss is below 0)", () => {
    const s = stub();
    const report = accumulateGradients(s.model, { images, noise, scheduler, thr: 0 });
    assert.equal(report.tPrime, T - 1);
    assert.equal(report.losses.length, T);
  });

  test("a batch of the wrong shape, mismatched noise or a bad thr are refused clearly", () => {
    const s = stub();
    const big = torch.zeros([2, 1, 8, 8]);
    assert.throws(
      () => accumulateGradients(s.model, { images: big, noise: big, scheduler, thr: 0.05 }),
      /calibration images are \[1, 8, 8\] but the model takes \[1, 4, 4\]/,
    );
    const rgb = torch.zeros([2, 3, 4, 4]);
    assert.throws(() => accumulateGradients(s.model, { images: rgb, noise: rgb, scheduler, thr: 0.05 }), /calibration images are \[3, 4, 4\] but the model takes \[1, 4, 4\]/);
    assert.throws(
      () => accumulateGradients(s.model, { images, noise: torch.zeros([1, 1, 4, 4]), scheduler, thr: 0.05 }),
      /calibration images \[2, 1, 4, 4\] and noise \[1, 1, 4, 4\] must both be \[B, C, H, W\] of one shape/,
    );
    const flat = torch.zeros([1, 4, 4]);
    assert.throws(() => accumulateGradients(s.model, { images: flat, noise: flat, scheduler, thr: 0.05 }), /must both be \[B, C, H, W\]/);
    assert.throws(() => accumulateGradients(s.model, { images, noise, scheduler, thr: 1 }), (e: unknown) => e instanceof RangeError && /thr must be in \[0, 1\), got 1/.test(e.message));
    assert.deepEqual(s.seen, [], "nothing ran");
  });
});

describe("calibration files", () => {
  const dir = scratchDir("diffprune-calibration-");
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = { in_channels: 1, sample_size: 4 } as unknown as UNet2DConfig;

  test("save -> load gives the same images and noise", () => {
    const path = join(dir, "ok.safetensors");
    torch.manualSeed(0);
    const images = torch.rand([3, 1, 4, 4]).mul(2).sub(1);
    const noise = torch.randn([3, 1, 4, 4]);
    saveCalibration(path, { images, noise });
    const back = loadCalibration(path, config);
    assert.ok(torch.equal(back.images, images));
    assert.ok(torch.equal(back.noise, noise));
  });

  test("wrong shapes and missing tensors name the file and what a calibration file holds", () => {
    const wrongSize = join(dir, "wrong-size.safetensors");
    saveCalibration(wrongSize, { images: torch.zeros([2, 1, 8, 8]), noise: torch.zeros([2, 1, 8, 8]) });
    assert.throws(() => loadCalibration(wrongSize, config), (e: unknown) => {
      const m = (e as Error).message;
      return m.includes(wrongSize) && m.includes("images are [2, 1, 8, 8] but the model takes [B, 1, 4, 4]") && m.includes('"noise"');
    });
    const differ = join(dir, "differ.safetensors");
    saveCalibration(differ, { images: torch.zeros([2, 1, 4, 4]), noise: torch.zeros([3, 1, 4, 4]) });
    assert.throws(() => loadCalibration(differ, config), /images \[2, 1, 4, 4\] and noise \[3, 1, 4, 4\] differ in shape/);
    const missing = join(dir, "missing.safetensors");
    saveFile({ images: torch.zeros([2, 1, 4, 4]) }, missing);
    assert.throws(() => loadCalibration(missing, config), /missing "noise"/);
  });

  test("a batch that cannot score channels is refused before the gradient loop, naming the file", () => {
    const bad: [string, Tensor, Tensor, RegExp][] = [
      ["empty", torch.zeros([0, 1, 4, 4]), torch.zeros([0, 1, 4, 4]), /it holds no images \(batch 0\)/],
      ["zeros", torch.zeros([2, 1, 4, 4]), torch.randn([2, 1, 4, 4]), /images are all zeros/],
      ["zero-noise", torch.rand([2, 1, 4, 4]).sub(0.5), torch.zeros([2, 1, 4, 4]), /noise are all zeros/],
      ["nan", torch.full([2, 1, 4, 4], NaN), torch.randn([2, 1, 4, 4]), /images hold 32 NaN or Inf values \(of 32\)/],
      ["inf-noise", torch.rand([2, 1, 4, 4]).sub(0.5), torch.randn([2, 1, 4, 4]).div(torch.zeros([2, 1, 4, 4])), /noise hold 32 NaN or Inf values/],
      ["pixels", torch.rand([2, 1, 4, 4]).mul(255), torch.randn([2, 1, 4, 4]), /images reach [\d.]+, outside \[-1, 1\]/],
    ];
    for (const [name, images, noise, message] of bad) {
      const path = join(dir, `${name}.safetensors`);
      saveCalibration(path, { images, noise });
      assert.throws(() => loadCalibration(path, config), (e: unknown) => {
        const m = (e as Error).message;
        assert.ok(e instanceof CalibrationError, String(e));
        assert.ok(m.startsWith(`${path}: this calibration batch cannot score channels: `), m);
        assert.match(m, message);
        return true;
      });
    }
    const fine = { images: torch.rand([2, 1, 4, 4]).mul(2).sub(1), noise: torch.randn([2, 1, 4, 4]) };
    assert.equal(whyUnusable(fine), null);
    assert.equal(whyUnusable({ ...fine, images: fine.images.add(1).div(2) }), null, "images in [0, 1] are in range");
  });

  test("a calibration batch must be a positive integer", () => {
    assert.throws(() => drawCalibration("unused", config, 0, 1), /calibration batch must be a positive integer, got 0/);
    assert.throws(() => drawCalibration("unused", config, 1.5, 1), /got 1\.5/);
  });
});
