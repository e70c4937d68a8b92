// scheduler_config.json: defaults, folders, round trips and the errors a bad config gives.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  DDIMScheduler,
  DDPMScheduler,
  loadScheduler,
  loadSchedulerConfig,
  resolveSchedulerConfig,
  SchedulerConfigError,
  schedulerFromConfig,
} from "../../src/diffusion/schedulers/index.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "diffprune-schedulers-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function folderWith(name: string, config: unknown, sub = ""): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, sub, "scheduler_config.json"), JSON.stringify(config));
  return dir;
}

describe("scheduler config", () => {
  test("a folder without a config gets DDPM, linear 1e-4..0.02 over 1000 steps", () => {
    mkdirSync(join(tmp, "empty"));
    const config = loadSchedulerConfig(join(tmp, "empty"));
    assert.equal(config._class_name, "DDPMScheduler");
    assert.equal(config.num_train_timesteps, 1000);
    assert.equal(config.beta_start, 1e-4);
    assert.equal(config.beta_end, 0.02);
    assert.equal(config.beta_schedule, "linear");
    assert.equal(config.variance_type, "fixed_small");
    assert.equal(config.clip_sample, true);
    assert.equal(config.clip_sample_range, 1);
    assert.equal(config.prediction_type, "epsilon");
    const s = loadScheduler(join(tmp, "empty"));
    assert.ok(s instanceof DDPMScheduler);
    assertClose(s.betas.toArray().slice(0, 1), [1e-4], 1e-10);
  });

  test("the fixture folder's DDIM config, and a pipeline folder's scheduler/", () => {
    const s = loadScheduler(fixture("unet-tiny"));
    assert.ok(s instanceof DDIMScheduler);
    assert.equal(s.config.steps_offset, 0);
    assert.equal(s.finalAlphaCumprod, 1);
    const pipeline = folderWith("pipeline", { _class_name: "DDIMScheduler", set_alpha_to_one: false, num_train_timesteps: 50 }, "scheduler");
    const p = loadScheduler(pipeline);
    assert.ok(p instanceof DDIMScheduler);
    assert.equal(p.numTrainTimesteps, 50);
    assert.equal(p.finalAlphaCumprod, p.alphasCumprod.toArray()[0], "set_alpha_to_one false: alphas_cumprod[0]");
  });

  test("round trip: toJSON keeps every given value and unknown keys, and loads back the same", () => {
    const raw = {
      _class_name: "DDIMScheduler",
      _diffusers_version: "0.17.0",
      num_train_timesteps: 500,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      beta_end: 0.012,
      clip_sample: false,
      steps_offset: 1,
      my_note: { keep: [1, 2] },
    };
    const s = schedulerFromConfig(raw);
    const json = s.toJSON();
    for (const [k, v] of Object.entries(raw)) assert.deepEqual(json[k], v, k);
    assert.equal(json.set_alpha_to_one, true, "defaults are written out");
    assert.equal(json.variance_type, undefined, "DDPM-only keys are not written for DDIM");
    const back = loadScheduler(folderWith("roundtrip", JSON.parse(JSON.stringify(json))));
    assert.ok(back instanceof DDIMScheduler);
    assert.deepEqual(back.toJSON(), json);
    assertClose(back.alphasCumprod, s.alphasCumprod, 0);
  });

  test("DDIMScheduler.fromConfig(ddpm.config) samples the same training schedule", () => {
    const ddpm = new DDPMScheduler({ beta_schedule: "squaredcos_cap_v2", variance_type: "fixed_large" });
    const ddim = DDIMScheduler.fromConfig(ddpm.config);
    assert.equal(ddim.config._class_name, "DDIMScheduler");
    assert.equal(ddim.toJSON()._class_name, "DDIMScheduler");
    assertClose(ddim.alphasCumprod, ddpm.alphasCumprod, 0);
    // and back: the DDPM-only key survives in the resolved config
    assert.equal(DDPMScheduler.fromConfig(ddim.config).config.variance_type, "fixed_large");
  });

  test("clear errors for what is not supported", () => {
    assert.throws(() => schedulerFromConfig({ _class_name: "PNDMScheduler" }), (e: Error) => e instanceof SchedulerConfigError && /PNDMScheduler/.test(e.message));
    assert.throws(() => new DDPMScheduler({ prediction_type: "v_prediction" as "epsilon" }), /prediction_type "v_prediction" is not supported/);
    assert.throws(() => resolveSchedulerConfig({ beta_schedule: "sigmoid" }), /beta_schedule "sigmoid" is not supported/);
    assert.throws(() => resolveSchedulerConfig({ variance_type: "learned_range" }), /variance_type/);
    assert.throws(() => resolveSchedulerConfig({ thresholding: true }), /thresholding/);
    assert.throws(() => resolveSchedulerConfig({ num_train_timesteps: 3, trained_betas: [0.1] }), /trained_betas/);
    assert.throws(() => resolveSchedulerConfig({ num_train_timesteps: "1000" }), /num_train_timesteps must be an integer/);
    const bad = folderWith("bad", { _class_name: "DDPMScheduler", prediction_type: "sample" });
    assert.throws(() => loadSchedulerConfig(bad), (e: Error) => e.message.startsWith(join(bad, "scheduler_config.json")) && /not supported/.test(e.message));
  });
});
