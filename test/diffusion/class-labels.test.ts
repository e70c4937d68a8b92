// Class conditioning end to end: a class-conditional UNet trains on its dataset's labels (only the
// class-table rows of the batch's classes move), samples with labels split over batches exactly as
// forward by hand, and every missing or wrong label is a clear error before any work.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { Uint8ImageDataset } from "../../src/data/index.js";
import { UNet2DModel, type UNet2DConfig } from "../../src/models/index.js";
import { DDIMScheduler, DDPMScheduler, defaultClassLabels, generate, generateAsync, Trainer, type AsyncDenoiser, type TrainOptions } from "../../src/diffusion/index.js";
import type { Embedding } from "../../src/nn/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-class-labels-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const TINY = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as UNet2DConfig;
const CONDITIONAL = { ...TINY, num_class_embeds: 10 };

/** A freshly initialised model (the same weights for the same config). */
function model(config: Partial<UNet2DConfig>): UNet2DModel {
  torch.manualSeed(3);
  return torch.noGrad(() => new UNet2DModel(config));
}

/** 16 images of 16x16 (stripes at different places), labelled `labels[i % labels.length]` when labels are given. */
function stripes(labels?: number[], name = "stripes"): Uint8ImageDataset {
  const count = 16;
  const data = new Uint8Array(count * 256);
  for (let i = 0; i < count; i++) for (let p = 0; p < 256; p++) data[i * 256 + p] = (p >> 4) % 4 === i % 4 ? 255 : (i * 13) % 64;
  const source = { count, channels: 1, height: 16, width: 16 };
  const sample = { sampleSize: 16, channels: 1 };
  return new Uint8ImageDataset(data, source, sample, labels ? { name, labels: Int32Array.from({ length: count }, (_, i) => labels[i % labels.length]!), classes: Array.from({ length: 10 }, (_, i) => `c${i}`) } : { name });
}

const OPTIONS: Partial<TrainOptions> = { batchSize: 4, lr: 1e-3, warmupSteps: 1, weightDecay: 0, checkpointEvery: 1000, checkpointSeconds: 0, numSamples: 3, sampleSteps: 2 };

const table = (m: UNet2DModel): Tensor => (m.classEmbedding as Embedding).weight;
const rowsThatMoved = (before: Tensor, after: Tensor): number[] =>
  torch.tidy(() => after.sub(before).abs().sum(1).toArray()).flatMap((d, i) => (d > 0 ? [i] : []));

describe("training a class-conditional UNet", () => {
  test("it trains on the batch's labels: only the class-table rows of the classes seen move, the loss stays finite", () => {
    const m = model(CONDITIONAL);
    const before = torch.keep(table(m).detach().clone());
    const t = new Trainer(m, new DDPMScheduler(), stripes([3, 7]), join(scratch, "rows"), { ...OPTIONS, steps: 3 });
    const losses: number[] = [];
    t.run({ onStep: (info) => losses.push(info.loss) });
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    // AdamW without weight decay leaves a row whose gradient was always zero exactly as it was
    assert.deepEqual(rowsThatMoved(before, table(m)), [3, 7]);
    before.dispose();
    t.dispose();
    m.dispose();
  });

  test("its preview grids sample every class; steps and grids leave no tensors behind", () => {
    const m = model(CONDITIONAL);
    const dir = join(scratch, "grid");
    const t = new Trainer(m, new DDPMScheduler(), stripes([0, 1, 2]), dir, { ...OPTIONS, steps: 3, sampleEvery: 2 });
    t.trainStep();
    const before = torch.memory();
    t.run();
    assert.deepEqual(torch.memory(), before);
    assert.ok(existsSync(join(dir, "samples", "step-0000002.png")));
    t.dispose();
    m.dispose();
  });

  test("an unconditional model trains on labelled data exactly as on the same data without labels", () => {
    const weights = (labels?: number[]): Tensor[] => {
      const m = model(TINY);
      const t = new Trainer(m, new DDPMScheduler(), stripes(labels), join(scratch, `plain-${labels ? "labelled" : "bare"}`), { ...OPTIONS, steps: 2 });
      t.run();
      t.dispose();
      const out = m.parameters().map((p) => torch.keep(p.detach().clone()));
      m.dispose();
      return out;
    };
    const a = weights([1, 2]);
    const b = weights();
    a.forEach((p, i) => assert.ok(torch.equal(p, b[i]!), `parameter ${i} differs`));
    torch.dispose([...a, ...b]);
  });

  test("data without labels, labels beyond num_class_embeds and an identity class embedding are refused before training", () => {
    const m = model(CONDITIONAL);
    const make = (data: Uint8ImageDataset) => new Trainer(m, new DDPMScheduler(), data, join(scratch, "refused"), { ...OPTIONS, steps: 1 });
    assert.throws(() => make(stripes(undefined, "folder:plain")), {
      name: "ClassLabelError",
      message: /class-conditional \(num_class_embeds 10\) and needs class labels, but folder:plain has none/,
    });
    const wide = new Uint8ImageDataset(new Uint8Array(2 * 256), { count: 2, channels: 1, height: 16, width: 16 }, { sampleSize: 16, channels: 1 }, { name: "wide", labels: Int32Array.of(4, 12) });
    assert.throws(() => make(wide), /train: wide: the largest class label is 12, but the model has num_class_embeds 10 \(labels 0\.\.9\)/);
    m.dispose();
    const identity = model({ ...TINY, class_embed_type: "identity" });
    assert.throws(() => new Trainer(identity, new DDPMScheduler(), stripes([1]), join(scratch, "refused"), OPTIONS), /"identity" takes class embeddings/);
    identity.dispose();
  });
});

describe("sampling a class-conditional UNet", () => {
  test("generate passes each batch its labels: the same as forward and DDIM steps by hand", () => {
    const m = model(CONDITIONAL);
    torch.manualSeed(5);
    const noise = torch.keep(torch.randn([3, 1, 16, 16]));
    const labels = [7, 2, 5];
    const scheduler = new DDIMScheduler();
    const sampled = torch.keep(generate(m, scheduler, noise, { numInferenceSteps: 2, batchSize: 2, classLabels: labels }));
    // by hand, in generate's batches (2 + 1): a batch of 3 may round differently
    const byHand = torch.keep(
      torch.noGrad(() =>
        torch.tidy(() => {
          const l = torch.tensor(labels, { dtype: "int64" });
          const batches = [[0, 2], [2, 1]].map(([start, size]) => {
            let x = noise.narrow(0, start!, size!).mul(scheduler.initNoiseSigma);
            for (const t of scheduler.timesteps) x = scheduler.step(m.forward(x, t, l.narrow(0, start!, size!)), t, x, { eta: 0 }).prevSample;
            return x;
          });
          return torch.cat(batches, 0);
        }),
      ),
    );
    assert.deepEqual(scheduler.timesteps, [999, 0]);
    assert.ok(torch.equal(sampled, byHand), `max |generate - by hand| = ${torch.tidy(() => sampled.sub(byHand).abs().max().item())}`);
    // the labels matter, and every form of them gives the same samples
    const other = generate(m, scheduler, noise, { numInferenceSteps: 2, batchSize: 2, classLabels: [7, 2, 6] });
    assert.ok(torch.tidy(() => other.narrow(0, 2, 1).sub(sampled.narrow(0, 2, 1)).abs().max().item()) > 1e-3, "class 6 samples another image than class 5");
    assert.ok(torch.equal(other.narrow(0, 0, 2), sampled.narrow(0, 0, 2)), "the other samples keep their classes");
    const asTensor = torch.tensor(labels, { dtype: "int64" });
    const fromTensor = generate(m, scheduler, noise, { numInferenceSteps: 2, batchSize: 2, classLabels: asTensor });
    assert.ok(torch.equal(fromTensor, sampled));
    const before = torch.memory();
    const one = generate(m, scheduler, noise, { numInferenceSteps: 2, batchSize: 2, classLabels: 7 });
    assert.ok(torch.tidy(() => torch.equal(one.narrow(0, 0, 1), sampled.narrow(0, 0, 1))));
    one.dispose();
    assert.deepEqual(torch.memory(), before, "generate keeps no labels behind");
    torch.dispose([noise, sampled, byHand, other, asTensor, fromTensor, one]);
    scheduler.dispose();
    m.dispose();
  });

  test("generateAsync passes the labels to a model whose forward takes them", async () => {
    const m = model(CONDITIONAL);
    torch.manualSeed(6);
    const noise = torch.randn([3, 1, 16, 16]);
    const scheduler = new DDIMScheduler();
    const options = { numInferenceSteps: 2, batchSize: 2, classLabels: [1, 9, 4] };
    const expected = generate(m, scheduler, noise, options);
    const seen: number[][] = [];
    const denoiser: AsyncDenoiser = {
      config: m.config,
      forward: async (x: Tensor, t: number, l?: Tensor) => {
        seen.push(l!.toArray());
        return torch.noGrad(() => m.forward(x, t, l));
      },
    };
    const actual = await generateAsync(denoiser, scheduler, noise, options);
    assert.ok(torch.equal(actual, expected));
    assert.deepEqual(seen, [[1, 9], [1, 9], [4], [4]]);
    // a model with no config cannot say how it is conditioned, and a conditional model needs labels
    const unconfigured: AsyncDenoiser = { forward: async (x: Tensor, t: number) => torch.noGrad(() => m.forward(x, t, 0)) };
    await assert.rejects(generateAsync(unconfigured, scheduler, noise, options), /generateAsync: class labels were given, but this model has no config/);
    await assert.rejects(generateAsync(denoiser, scheduler, noise, { numInferenceSteps: 2 }), /generateAsync: the model is class-conditional \(num_class_embeds 10\): give class labels/);
    torch.dispose([noise, expected, actual]);
    scheduler.dispose();
    m.dispose();
  });

  test("missing, unwanted, out-of-range or miscounted labels are refused before sampling", () => {
    const conditional = model(CONDITIONAL);
    const plain = model(TINY);
    const noise = torch.zeros([2, 1, 16, 16]);
    const scheduler = new DDIMScheduler();
    const run = (m: UNet2DModel, classLabels?: number[] | number) => generate(m, scheduler, noise, { numInferenceSteps: 2, ...(classLabels === undefined ? {} : { classLabels }) });
    assert.throws(() => run(conditional), { name: "ClassLabelError", message: /generate: the model is class-conditional \(num_class_embeds 10\): give class labels, one per sample \(2\)/ });
    assert.throws(() => run(plain, [0, 1]), /generate: class labels were given, but the model is not class-conditional/);
    assert.throws(() => run(conditional, [0, 10]), /the largest class label is 10, but the model has num_class_embeds 10/);
    assert.throws(() => run(conditional, [0, 1, 2]), /3 class labels for 2 samples/);
    assert.throws(() => run(conditional, -1), /class label -1 \(at 0\) is not a class number/);
    assert.throws(() => run(conditional, [0.5, 1]), /class label 0.5/);
    const floats = torch.tensor([1, 2]);
    assert.throws(() => generate(conditional, scheduler, noise, { classLabels: floats }), /class labels must be integers of shape \[2\] \(int64\), got float32/);
    torch.dispose([noise, floats]);
    scheduler.dispose();
    conditional.dispose();
    plain.dispose();
  });
});

describe("defaultClassLabels", () => {
  test("a class table's classes in turn; none for an unconditional model; refused where there is no table", () => {
    assert.deepEqual(defaultClassLabels({ num_class_embeds: 3 }, 7, "x"), [0, 1, 2, 0, 1, 2, 0]);
    assert.equal(defaultClassLabels({}, 4, "x"), undefined);
    assert.throws(() => defaultClassLabels({ class_embed_type: "timestep" }, 4, "sample m"), /^ClassLabelError: sample m: the model is class-conditional \(class_embed_type "timestep"\) with no class table/);
  });
});
