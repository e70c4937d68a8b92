// The gradient criteria on a class-conditional UNet: the calibration batch carries its images'
// labels (drawn from a labelled dataset, saved and read back from a calibration file), the
// gradient loop passes them to forward (only the class-table rows of the batch's classes get a
// gradient), and a batch without labels is a clear error.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { openDataset } from "../../src/data/index.js";
import { loadFile, saveFile, writePng } from "../../src/io/index.js";
import { UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import type { Embedding } from "../../src/nn/index.js";
import { accumulateGradients, drawCalibration, loadCalibration, pruneUNet, saveCalibration, type Calibration } from "../../src/pruning/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-calibration-labels-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const TINY = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as UNet2DConfig;
const CONDITIONAL = { ...TINY, num_class_embeds: 10 } as UNet2DConfig;

/** A folder of 16x16 gray images in class subfolders: a/ (3 images), b/ (2), c/ (3). */
function classFolder(): string {
  const root = join(scratch, "classes");
  let i = 0;
  for (const [name, count] of [["a", 3], ["b", 2], ["c", 3]] as const) {
    mkdirSync(join(root, name), { recursive: true });
    for (let k = 0; k < count; k++, i++) {
      const data = Uint8Array.from({ length: 256 }, (_, p) => (p * (i + 3) + 29 * i) % 256);
      writePng(join(root, name, `${k}.png`), { width: 16, height: 16, channels: 1, data });
    }
  }
  return root;
}

const ROOT = classFolder();
const SPEC = `folder:${ROOT}`;

function model(config: UNet2DConfig): UNet2DModel {
  torch.manualSeed(4);
  return torch.noGrad(() => new UNet2DModel(config));
}

const dispose = (c: Calibration): void => torch.dispose([c.images, c.noise, ...(c.labels ? [c.labels] : [])]);

describe("calibration batches with class labels", () => {
  test("drawn from a labelled dataset: the batch's labels, with the images and noise an unconditional draw gets", () => {
    const calib = drawCalibration(SPEC, CONDITIONAL, 5, 2);
    const plain = drawCalibration(SPEC, TINY, 5, 2);
    assert.equal(plain.labels, undefined, "an unconditional model's batch has no labels");
    assert.ok(torch.equal(calib.images, plain.images));
    assert.ok(torch.equal(calib.noise, plain.noise));
    assert.equal(calib.labels!.dtype, "int64");
    // each label is the class folder of its image
    const dataset = openDataset(SPEC, { sampleSize: 16, channels: 1 });
    const all = dataset.getBatch(Array.from({ length: dataset.length }, (_, i) => i));
    const labels = calib.labels!.toArray();
    for (let b = 0; b < 5; b++) {
      const index = Array.from({ length: dataset.length }, (_, i) => i).find((i) => torch.tidy(() => torch.equal(all.narrow(0, i, 1), calib.images.narrow(0, b, 1))))!;
      assert.equal(labels[b], dataset.labels![index], `image ${b} (dataset index ${index})`);
    }
    all.dispose();
    dispose(calib);
    dispose(plain);
  });

  test("saved and read back; a file without labels, or with labels the model lacks, is refused for a conditional model", () => {
    const calib = drawCalibration(SPEC, CONDITIONAL, 4, 0);
    const file = join(scratch, "calibration.safetensors");
    saveCalibration(file, calib);
    const back = loadCalibration(file, CONDITIONAL);
    assert.ok(torch.equal(back.labels!, calib.labels!));
    assert.ok(torch.equal(back.images, calib.images));
    const plain = loadCalibration(file, TINY);
    assert.equal(plain.labels, undefined, "an unconditional model ignores the labels");
    const bare = join(scratch, "bare.safetensors");
    saveFile({ images: calib.images, noise: calib.noise }, bare);
    assert.throws(() => loadCalibration(bare, CONDITIONAL), /bare\.safetensors: missing "labels": the model is class-conditional \(num_class_embeds 10\)/);
    const wide = join(scratch, "wide.safetensors");
    const big = torch.tensor([0, 1, 2, 11], { dtype: "int64" });
    saveFile({ images: calib.images, noise: calib.noise, labels: big }, wide);
    assert.throws(() => loadCalibration(wide, CONDITIONAL), /wide\.safetensors: labels: the largest class label is 11, but the model has num_class_embeds 10/);
    const few = join(scratch, "few.safetensors");
    const short = torch.tensor([0, 1], { dtype: "int64" });
    saveFile({ images: calib.images, noise: calib.noise, labels: short }, few);
    assert.throws(() => loadCalibration(few, CONDITIONAL), /few\.safetensors: labels: class labels of shape \[2\] for 4 samples/);
    assert.deepEqual([...loadFile(file).keys()].sort(), ["images", "labels", "noise"]);
    torch.dispose([big, short]);
    [calib, back, plain].forEach(dispose);
  });

  test("a conditional model cannot draw from data without labels", () => {
    const flat = join(scratch, "flat");
    mkdirSync(flat);
    writePng(join(flat, "x.png"), { width: 16, height: 16, channels: 1, data: new Uint8Array(256).fill(200) });
    writePng(join(flat, "y.png"), { width: 16, height: 16, channels: 1, data: new Uint8Array(256).fill(20) });
    assert.throws(() => drawCalibration(`folder:${flat}`, CONDITIONAL, 2, 0), {
      name: "CalibrationError",
      message: /folder:.*flat has no class labels, but the model is class-conditional \(num_class_embeds 10\)/,
    });
  });
});

describe("the gradient loop with class labels", () => {
  const scheduler = new DDPMScheduler({ num_train_timesteps: 6 });
  after(() => scheduler.dispose());

  test("passes the labels to forward: only the rows of the batch's classes get a gradient", () => {
    const m = model(CONDITIONAL);
    const calib = drawCalibration(SPEC, CONDITIONAL, 6, 1);
    const report = accumulateGradients(m, { ...calib, scheduler, thr: null });
    assert.equal(report.losses.length, 6);
    assert.ok(report.losses.every(Number.isFinite));
    const grad = (m.classEmbedding as Embedding).weight.grad!;
    const rows = torch.tidy(() => grad.abs().sum(1).toArray()).flatMap((g, i) => (g > 0 ? [i] : []));
    assert.deepEqual(rows, [...new Set(calib.labels!.toArray())].sort());
    dispose(calib);
    m.dispose();
  });

  test("a conditional model without labels, or an unconditional one with them, is refused", () => {
    const m = model(CONDITIONAL);
    const calib = drawCalibration(SPEC, CONDITIONAL, 2, 0);
    const { labels, ...unlabelled } = calib;
    assert.throws(() => accumulateGradients(m, { ...unlabelled, scheduler, thr: null }), {
      name: "ClassLabelError",
      message: /the model is class-conditional \(num_class_embeds 10\): its calibration batch needs class labels/,
    });
    const plain = model(TINY);
    assert.throws(() => accumulateGradients(plain, { ...calib, scheduler, thr: null }), /the calibration batch has class labels, but the model is not class-conditional/);
    assert.throws(() => accumulateGradients(m, { ...unlabelled, labels: labels!.narrow(0, 0, 1), scheduler, thr: null }), /do not match the 2 calibration images/);
    dispose(calib);
    m.dispose();
    plain.dispose();
  });

  test("diff-pruning prunes a conditional model from a labelled calibration batch", () => {
    const m = model(CONDITIONAL);
    const calib = drawCalibration(SPEC, CONDITIONAL, 4, 0);
    const report = pruneUNet(m, { criterion: "diff-pruning", ratio: 0.25, scheduler, calibration: calib });
    assert.ok(report.after.params < report.before.params);
    assert.ok(report.gradients!.losses.length > 0);
    const out: Tensor = torch.noGrad(() => m.forward(calib.images, 3, calib.labels));
    assert.deepEqual(out.shape, calib.images.shape);
    out.dispose();
    dispose(calib);
    m.dispose();
  });
});
