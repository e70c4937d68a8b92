// Training a latent diffusion model's autoencoder: the loss is the one the module says (checked
// against its terms computed by hand), training lowers it, a resumed run ends with the weights of
// an uninterrupted one, the shipped scaling_factor is 1 / std of the latents, and the result makes
// a latent pipeline with a new UNet (train --config --autoencoder).
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { AutoencoderKL, VQModel } from "../../src/models/index.js";
import { openDataset } from "../../src/data/index.js";
import { disposePipeline, loadPipeline, PipelineError } from "../../src/diffusion/index.js";
import { autoencoderLoss, finetune, latentScalingFactor, trainAutoencoder, type AutoencoderTrainOptions } from "../../src/workflow/index.js";
import { scratchDir, tinyImageFolder } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-train-ae-");
process.env.DIFFPRUNE_CACHE = join(scratch, "cache");
after(() => rmSync(scratch, { recursive: true, force: true }));
const data = `folder:${tinyImageFolder(join(scratch, "images"))}`;
const coder = { in_channels: 1, out_channels: 1, block_out_channels: [8, 8], down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"] as "DownEncoderBlock2D"[], up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"] as "UpDecoderBlock2D"[], latent_channels: 2, norm_num_groups: 4, sample_size: 16 };
const klConfig = join(scratch, "kl.json");
const vqConfig = join(scratch, "vq.json");
writeFileSync(klConfig, JSON.stringify({ _class_name: "AutoencoderKL", ...coder }));
writeFileSync(vqConfig, JSON.stringify({ _class_name: "VQModel", ...coder, num_vq_embeddings: 16 }));
const train = (o: Partial<AutoencoderTrainOptions>): Partial<AutoencoderTrainOptions> => ({ batchSize: 4, lr: 3e-3, warmupSteps: 2, checkpointEvery: 100, ...o });
const dataset = () => openDataset(data, { sampleSize: 16, channels: 1 });

describe("autoencoderLoss", () => {
  test("AutoencoderKL: L1 of the reconstructed posterior sample + kl_weight x KL per image / pixels", () => {
    torch.manualSeed(1);
    const ae = new AutoencoderKL(coder);
    const x = dataset().getBatch([0, 1, 2]);
    torch.manualSeed(5);
    const l = autoencoderLoss(ae, x, { klWeight: 0.5, codebookWeight: 1 });
    // by hand, drawing the same posterior noise
    const p = ae.encode(x);
    torch.manualSeed(5);
    const noise = torch.randnLike(p.mean);
    const rec = ae.decode(p.mean.add(p.std.mul(noise))).sub(x).abs().mean().item();
    const m = p.mean.toArray();
    const lv = p.logvar.toArray();
    let kl = 0;
    for (let i = 0; i < m.length; i++) kl += 0.5 * (m[i]! ** 2 + Math.exp(lv[i]!) - 1 - lv[i]!);
    const klPerPixel = kl / 3 / 256;
    assert.ok(Math.abs(l.reconstruction.item() - rec) < 1e-6);
    assert.ok(Math.abs(l.regularizer.item() - klPerPixel) < 1e-6 * Math.max(1, klPerPixel));
    assert.ok(Math.abs(l.total.item() - (rec + 0.5 * klPerPixel)) < 1e-5);
    ae.dispose();
  });

  test("VQModel: L1 of the quantized reconstruction + codebook_weight x the codebook loss; gradients reach encoder and codebook", () => {
    torch.manualSeed(2);
    const ae = new VQModel({ ...coder, num_vq_embeddings: 16 });
    const x = dataset().getBatch([3, 4]);
    const l = autoencoderLoss(ae, x, { klWeight: 0, codebookWeight: 2 });
    const expectedRec = ae.forward(x).sub(x).abs().mean().item();
    assert.ok(Math.abs(l.reconstruction.item() - expectedRec) < 1e-6);
    assert.ok(Math.abs(l.total.item() - (expectedRec + 2 * l.regularizer.item())) < 1e-5);
    l.total.backward();
    const grads = new Map(Array.from(ae.namedParameters(), ([n, p]) => [n, p.grad?.abs().sum().item() ?? 0]));
    assert.ok(grads.get("encoder.conv_in.weight")! > 0, "the straight-through estimator passes gradients to the encoder");
    assert.ok(grads.get("quantize.embedding.weight")! > 0, "the codebook loss moves the codebook");
    ae.dispose();
  });
});

describe("trainAutoencoder", () => {
  test("lowers the loss, writes model/ with scaling_factor = 1 / std of the latents, and the reconstruction metrics", () => {
    const out = join(scratch, "kl-run");
    const r = trainAutoencoder({ config: klConfig, data, out, train: train({ steps: 40 }) });
    const losses = readFileSync(join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).loss as number);
    assert.equal(losses.length, 4);
    assert.ok(losses[3]! < 0.8 * losses[0]!, `loss ${losses[0]} -> ${losses[3]}`);
    const ae = AutoencoderKL.fromPretrained(r.modelDir);
    assert.equal(ae.scalingFactor, r.scalingFactor);
    // 1 / std of the posterior samples, computed another way: all latents at once, torch's std
    const expected = torch.tidy(() => {
      torch.manualSeed(0);
      const z = ae.encode(dataset().getBatch([0, 1, 2, 3, 4, 5, 6, 7])).sample();
      return 1 / z.double().std().item();
    });
    // latentScalingFactor uses the population std, torch's std the sample one: n/(n-1) apart
    const n = 8 * 2 * 8 * 8;
    assert.ok(Math.abs(r.scalingFactor! - expected * Math.sqrt(n / (n - 1))) < 1e-4 * expected, `${r.scalingFactor} vs ${expected}`);
    assert.ok(Math.abs(latentScalingFactor(ae, dataset()) - r.scalingFactor!) < 1e-6);
    assert.equal(r.reconstruction.images, 8);
    assert.ok(Math.abs(r.reconstruction.psnr - 10 * Math.log10(1 / r.reconstruction.mse)) < 1e-9);
    assert.ok(r.reconstruction.ssim > 0 && r.reconstruction.ssim <= 1);
    assert.deepEqual(JSON.parse(readFileSync(join(out, "reconstruction.json"), "utf8")), r.reconstruction);
    ae.dispose();
  });

  test("a run stopped and resumed ends with the weights of an uninterrupted one", () => {
    const straight = trainAutoencoder({ config: vqConfig, data, out: join(scratch, "vq-straight"), train: train({ steps: 6 }) });
    const split = join(scratch, "vq-split");
    trainAutoencoder({ config: vqConfig, data, out: split, train: train({ steps: 3 }) });
    assert.throws(() => trainAutoencoder({ config: vqConfig, data, out: split, train: train({ steps: 6 }) }), /already holds an autoencoder run/);
    assert.throws(() => trainAutoencoder({ config: vqConfig, data, out: split, resume: true, train: train({ steps: 6, lr: 1e-3 }) }), /other settings \(lr: 0.003\)/);
    const resumed = trainAutoencoder({ config: vqConfig, data, out: split, resume: true, train: train({ steps: 6 }) });
    assert.equal(resumed.steps, 6);
    assert.equal(resumed.scalingFactor, null);
    const a = loadFile(join(straight.modelDir, "diffusion_pytorch_model.safetensors"));
    const b = loadFile(join(resumed.modelDir, "diffusion_pytorch_model.safetensors"));
    for (const [name, t] of a) assert.equal(maxAbsDiff(t, b.get(name)!), 0, name);
    const logSteps = readFileSync(join(split, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).step as number);
    assert.deepEqual(logSteps, [3, 6]);
    torch.dispose([...a.values(), ...b.values()]);
  });

  test("refuses a config that is not an autoencoder's", () => {
    const bad = join(scratch, "unet.json");
    writeFileSync(bad, JSON.stringify({ _class_name: "UNet2DModel" }));
    assert.throws(() => trainAutoencoder({ config: bad, data, out: join(scratch, "bad") }), /_class_name is "UNet2DModel"; an autoencoder's is "AutoencoderKL" or "VQModel"/);
  });
});

describe("a new latent pipeline from a UNet config and a trained autoencoder", () => {
  const unet = (channels: number) => {
    const file = join(scratch, `unet-${channels}.json`);
    writeFileSync(file, JSON.stringify({ sample_size: 8, in_channels: channels, out_channels: channels, block_out_channels: [8, 8], layers_per_block: 1, norm_num_groups: 4, down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"] }));
    return file;
  };

  test("train --config --autoencoder trains the UNet on its latents and writes a pipeline with the autoencoder copied", () => {
    const ae = join(scratch, "kl-run", "model");
    const r = finetune({ config: unet(2), autoencoder: ae, data, out: join(scratch, "ldm-run"), train: { steps: 2, batchSize: 4, warmupSteps: 1 } });
    const p = loadPipeline({ model: r.modelDir }, { latent: true });
    assert.ok(p.autoencoder instanceof AutoencoderKL);
    assert.equal(p.autoencoderSource!.folder, "vae");
    assert.equal(p.scheduler.config.clip_sample, false, "latents are not clipped to [-1, 1] as images are");
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors"]) assert.ok(readFileSync(join(r.modelDir, "vae", f)).equals(readFileSync(join(ae, f))), f);
    disposePipeline(p);
  });

  test("refuses a UNet whose channels are not the latents', and --autoencoder on pixels or with --model", () => {
    const ae = join(scratch, "kl-run", "model");
    assert.throws(() => loadPipeline({ config: unet(3), autoencoder: ae }, { latent: true }), (e: Error) => e instanceof PipelineError && /in_channels 3 and out_channels 3, but the latents of .* have 2 channels/.test(e.message));
    assert.throws(() => loadPipeline({ config: unet(2), autoencoder: ae }), /makes a latent pipeline/);
    assert.throws(() => loadPipeline({ model: ae, autoencoder: ae }, { latent: true }), /brings its own autoencoder/);
    const unetFolder = join(scratch, "ldm-run", "model", "unet");
    assert.throws(() => loadPipeline({ config: unet(2), autoencoder: unetFolder }, { latent: true }), /_class_name "UNet2DModel" is not an autoencoder diffprune has/);
  });
});
