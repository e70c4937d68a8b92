// Latent pipelines: loading an LDMPipeline folder (unet/, vqvae/, scheduler/) and sampling it as
// diffusers' LDMPipeline does, against the reference's own outputs (test/fixtures/ldm-tiny:
// the paper's sampler, skip "uniform", 10 steps, eta 0); AutoencoderKL pipelines (latents divided
// by scaling_factor before decoding); folders diffprune cannot read whole, refused; a pipeline
// written again, with its autoencoder copied byte for byte.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { loadFile } from "../../src/io/index.js";
import { AutoencoderKL, UNet2DModel, VQModel } from "../../src/models/index.js";
import {
  DDIMScheduler,
  decodeLatents,
  disposePipeline,
  encodeLatents,
  generate,
  generateImages,
  imageShape,
  loadPipeline,
  PipelineError,
  samplingScheduler,
  savePipeline,
} from "../../src/diffusion/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

const scratch = scratchDir("diffprune-ldm-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const TOL = 1e-3;
const ldm = fixture("ldm-tiny");
const expected = loadFile(fixture("ldm-tiny", "expected.safetensors"));
const get = (key: string): Tensor => expected.get(key)!;
const noise = loadFile(fixture("ldm-tiny", "init_noise.safetensors")).get("noise")!;

/** A copy of ldm-tiny in the scratch folder, changed by `edit`. */
function ldmCopy(name: string, edit: (dir: string) => void = () => undefined): string {
  const dir = join(scratch, name);
  cpSync(ldm, dir, { recursive: true });
  edit(dir);
  return dir;
}

const writeIndex = (dir: string, index: Record<string, unknown>) => writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
const LDM_INDEX = { _class_name: "LDMPipeline", scheduler: ["diffusers", "DDIMScheduler"], unet: ["diffusers", "UNet2DModel"], vqvae: ["diffusers", "VQModel"] };

describe("an LDMPipeline folder samples as diffusers' LDMPipeline (ldm-tiny)", () => {
  const pipeline = loadPipeline({ model: ldm }, { latent: true });
  after(() => disposePipeline(pipeline));

  test("loads unet/, vqvae/ (a VQModel) and scheduler/ (DDIM)", () => {
    assert.ok(pipeline.autoencoder instanceof VQModel);
    assert.ok(pipeline.scheduler instanceof DDIMScheduler);
    assert.deepEqual(pipeline.autoencoderSource, { folder: "vqvae", dir: join(ldm, "vqvae") });
    assert.deepEqual(imageShape(pipeline.model, pipeline.autoencoder), { channels: 3, size: 32 });
  });

  test("the DDIM loop on latents (init noise scaled by init_noise_sigma) gives the reference's timesteps and latents", (t) => {
    const scheduler = samplingScheduler(pipeline.scheduler, "ddim");
    const latents = generate(pipeline.model, scheduler, noise, { numInferenceSteps: 10, eta: 0, skip: "uniform" });
    assert.deepEqual(scheduler.timesteps, get("timesteps").toArray());
    const err = maxAbsDiff(latents, get("latents"));
    t.diagnostic(`latents: max |diff| ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `latents: max |diff| ${err}`);
    latents.dispose();
  });

  test("generateImages decodes the latents with the VQModel: the reference's image, and image_clamped once clamped", (t) => {
    const images = generateImages(pipeline, samplingScheduler(pipeline.scheduler, "ddim"), noise, { numInferenceSteps: 10, batchSize: 1 });
    assert.deepEqual(images.shape, [2, 3, 32, 32]);
    const err = maxAbsDiff(images, get("image"));
    const clamped = torch.tidy(() => images.clamp(-1, 1));
    const errClamped = maxAbsDiff(clamped, get("image_clamped"));
    t.diagnostic(`image: max |diff| ${err.toExponential(2)}; image_clamped: ${errClamped.toExponential(2)}`);
    assert.ok(err <= TOL, `image: max |diff| ${err}`);
    assert.ok(errClamped <= TOL, `image_clamped: max |diff| ${errClamped}`);
    torch.dispose([images, clamped]);
  });

  test("encodeLatents is VQModel.encode (unscaled), the latents decodeLatents takes", () => {
    const { mean, std } = encodeLatents(pipeline.autoencoder!, get("encode_in"));
    assert.equal(std, null);
    assert.ok(maxAbsDiff(mean, get("encode_out")) <= TOL);
    const back = decodeLatents(pipeline.autoencoder!, mean);
    assert.ok(maxAbsDiff(back, get("reconstruction")) <= TOL);
    torch.dispose([mean, back]);
  });

  test("without { latent: true } a latent pipeline is refused, not half-used", () => {
    assert.throws(() => loadPipeline({ model: ldm }), (e: unknown) => e instanceof PipelineError && /latent diffusion pipeline .*vqvae\/, a VQModel.*latents, not images/.test(e.message));
  });
});

describe("a pipeline written again loads and samples the same", () => {
  test("model_index.json, unet/, scheduler/, and vqvae/ copied byte for byte", () => {
    const pipeline = loadPipeline({ model: ldm }, { latent: true });
    const out = join(scratch, "written");
    mkdirSync(out);
    savePipeline(out, pipeline);
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors"])
      assert.ok(readFileSync(join(out, "vqvae", f)).equals(readFileSync(join(ldm, "vqvae", f))), `vqvae/${f} is the same bytes`);
    const index = JSON.parse(readFileSync(join(out, "model_index.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual({ ...index, _diffusers_version: undefined }, { ...LDM_INDEX, _diffusers_version: undefined });
    const again = loadPipeline({ model: out }, { latent: true });
    const a = generateImages(pipeline, samplingScheduler(pipeline.scheduler, "ddim"), noise, { numInferenceSteps: 5 });
    const b = generateImages(again, samplingScheduler(again.scheduler, "ddim"), noise, { numInferenceSteps: 5 });
    assert.equal(maxAbsDiff(a, b), 0);
    torch.dispose([a, b]);
    disposePipeline(pipeline);
    disposePipeline(again);
  });
});

describe("AutoencoderKL pipelines", () => {
  test("vae/ (AutoencoderKL): latents are divided by scaling_factor before decoding", () => {
    const dir = join(scratch, "kl");
    torch.manualSeed(3);
    const vae = torch.noGrad(() => new AutoencoderKL({ block_out_channels: [16, 16], down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"], norm_num_groups: 8, latent_channels: 4, sample_size: 16, scaling_factor: 0.5 }));
    vae.savePretrained(join(dir, "vae"));
    const unet = torch.noGrad(
      () => new UNet2DModel({ sample_size: 8, in_channels: 4, out_channels: 4, block_out_channels: [16, 32], down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }),
    );
    unet.savePretrained(join(dir, "unet"));
    mkdirSync(join(dir, "scheduler"));
    writeFileSync(join(dir, "scheduler", "scheduler_config.json"), JSON.stringify({ _class_name: "DDIMScheduler", clip_sample: false }));
    writeIndex(dir, { _class_name: "LDMPipeline", scheduler: ["diffusers", "DDIMScheduler"], unet: ["diffusers", "UNet2DModel"], vae: ["diffusers", "AutoencoderKL"] });
    const pipeline = loadPipeline({ model: dir }, { latent: true });
    assert.ok(pipeline.autoencoder instanceof AutoencoderKL);
    assert.deepEqual(imageShape(pipeline.model, pipeline.autoencoder), { channels: 3, size: 16 });
    torch.manualSeed(0);
    const z0 = torch.randn([2, 4, 8, 8]);
    const scheduler = samplingScheduler(pipeline.scheduler, "ddim");
    const images = generateImages(pipeline, scheduler, z0, { numInferenceSteps: 3 });
    const latents = generate(pipeline.model, scheduler, z0, { numInferenceSteps: 3 });
    const direct = torch.noGrad(() => vae.decode(latents.div(0.5)));
    assert.ok(maxAbsDiff(images, direct) <= 1e-6);
    // encodeLatents: the posterior's mean and std times scaling_factor
    const x = torch.rand([1, 3, 16, 16]).mul(2).sub(1);
    const { mean, std } = encodeLatents(pipeline.autoencoder, x);
    const posterior = torch.noGrad(() => vae.encode(x));
    assert.ok(maxAbsDiff(mean, posterior.mode().mul(0.5)) <= 1e-6);
    assert.ok(maxAbsDiff(std!, posterior.std.mul(0.5)) <= 1e-6);
    disposePipeline(pipeline);
    vae.dispose();
    unet.dispose();
  });
});

describe("folders diffprune cannot read whole are refused with what to do", () => {
  const refused = (dir: string, pattern: RegExp) =>
    assert.throws(() => loadPipeline({ model: dir }, { latent: true }), (e: unknown) => e instanceof PipelineError && pattern.test(e.message));

  test("a component diffprune does not have (a text encoder)", () => {
    const dir = ldmCopy("text-encoder", (d) => {
      writeIndex(d, { ...LDM_INDEX, text_encoder: ["transformers", "CLIPTextModel"] });
      mkdirSync(join(d, "text_encoder"));
    });
    refused(dir, /has a text_encoder \("transformers" "CLIPTextModel"\), which diffprune does not have/);
  });

  test("a class diffprune does not have for a component it knows", () => {
    refused(ldmCopy("cond-unet", (d) => writeIndex(d, { ...LDM_INDEX, unet: ["diffusers", "UNet2DConditionModel"] })), /unet is "UNet2DConditionModel", which diffprune does not have/);
    refused(ldmCopy("pndm", (d) => writeIndex(d, { ...LDM_INDEX, scheduler: ["diffusers", "PNDMScheduler"] })), /scheduler is "PNDMScheduler"/);
  });

  test("a pipeline class that samples otherwise", () => {
    refused(ldmCopy("superres", (d) => writeIndex(d, { ...LDM_INDEX, _class_name: "LDMSuperResolutionPipeline" })), /_class_name "LDMSuperResolutionPipeline" is a pipeline diffprune cannot sample/);
    refused(ldmCopy("ddpm-with-vq", (d) => writeIndex(d, { ...LDM_INDEX, _class_name: "DDPMPipeline" })), /DDPMPipeline has no autoencoder, but this folder names vqvae/);
  });

  test("a component named but missing, and a UNet that does not take the latents", () => {
    refused(ldmCopy("no-vq", (d) => rmSync(join(d, "vqvae"), { recursive: true })), /names vqvae \(VQModel\) but .*vqvae is missing/);
    refused(ldmCopy("no-sched", (d) => rmSync(join(d, "scheduler", "scheduler_config.json"))), /names a scheduler but .*scheduler_config\.json is missing/);
    const wide = ldmCopy("wide-unet", (d) => {
      const file = join(d, "unet", "config.json");
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), in_channels: 6 }));
    });
    // the UNet's own check (conv_in's weights) or the pipeline's (channels of the latents) refuses it
    assert.throws(() => loadPipeline({ model: wide }, { latent: true }));
  });

  test("a pixel pipeline (DDPMPipeline) with model_index.json still loads, with no autoencoder", () => {
    const dir = join(scratch, "ddpm-pipeline");
    cpSync(fixture("unet-tiny"), join(dir, "unet"), { recursive: true });
    writeIndex(dir, { _class_name: "DDPMPipeline", unet: ["diffusers", "UNet2DModel"], scheduler: [null, null] });
    const p = loadPipeline({ model: dir });
    assert.equal(p.autoencoder, null);
    disposePipeline(p);
  });
});
