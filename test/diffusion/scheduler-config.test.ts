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

describe("betas and counts out of range are refused, naming scheduler_config.json and the key", () => {
  const BAD: [string, Record<string, unknown>, RegExp][] = [
    ["beta_end 2.0 (negative alphas)", { beta_end: 2.0 }, /beta_end 2 is not in \(0, 1\)/],
    ["beta_start 0", { beta_start: 0 }, /beta_start 0 is not in \(0, 1\)/],
    ["beta_start negative", { beta_start: -0.001 }, /beta_start -0\.001 is not in \(0, 1\)/],
    ["beta_end 1 with scaled_linear", { beta_schedule: "scaled_linear", beta_end: 1 }, /beta_end 1 is not in \(0, 1\)/],
    ["beta_start above beta_end (decreasing betas)", { beta_start: 0.02, beta_end: 0.0001 }, /beta_start 0\.02 is above beta_end 0\.0001; betas must not decrease/],
    ["beta_end a string", { beta_end: "0.02" }, /beta_end must be a number, got "0\.02"/],
    ["trained_betas with a 1", { num_train_timesteps: 3, trained_betas: [0.1, 0.2, 1] }, /trained_betas\[2\] is 1, not in \(0, 1\)/],
    ["trained_betas with a NaN", { num_train_timesteps: 2, trained_betas: [0.1, NaN] }, /trained_betas\[1\] is NaN, not in \(0, 1\)/],
    ["trained_betas decreasing", { num_train_timesteps: 3, trained_betas: [0.1, 0.3, 0.2] }, /trained_betas\[2\] 0\.2 is below trained_betas\[1\] 0\.3/],
    ["num_train_timesteps 0", { num_train_timesteps: 0 }, /num_train_timesteps must be at least 1, got 0/],
    ["num_train_timesteps 10.5", { num_train_timesteps: 10.5 }, /num_train_timesteps must be an integer, got 10\.5/],
    ["num_train_timesteps -5", { num_train_timesteps: -5 }, /num_train_timesteps must be at least 1, got -5/],
    ["num_train_timesteps 1e12", { num_train_timesteps: 1e12 }, /num_train_timesteps 1000000000000 is more than 1,000,000/],
    ["steps_offset negative", { steps_offset: -1 }, /steps_offset must be in \[0, num_train_timesteps\) = \[0, 1000\), got -1/],
    ["clip_sample_range 0", { clip_sample_range: 0 }, /clip_sample_range must be positive, got 0/],
  ];
  for (const [name, patch, message] of BAD)
    test(name, () => {
      assert.throws(() => resolveSchedulerConfig(patch), (e: unknown) => e instanceof SchedulerConfigError && message.test(e.message));
      if (name.includes("NaN")) return; // JSON has no NaN (a file's null is refused as not a number)
      const dir = folderWith(`bad-${name.replace(/\W+/g, "-")}`, { _class_name: "DDIMScheduler", ...patch });
      assert.throws(() => loadScheduler(dir), (e: unknown) => {
        const m = (e as Error).message;
        return e instanceof SchedulerConfigError && m.startsWith(`${join(dir, "scheduler_config.json")}: `) && message.test(m) && !m.includes("\n");
      });
    });

  test("what diffusers ships still loads: squaredcos_cap_v2 ignores beta_start/beta_end, equal ends, steps_offset 1", () => {
    assert.doesNotThrow(() => resolveSchedulerConfig({ beta_schedule: "squaredcos_cap_v2", beta_end: 2 }));
    assert.doesNotThrow(() => resolveSchedulerConfig({ beta_start: 0.01, beta_end: 0.01 }));
    assert.doesNotThrow(() => resolveSchedulerConfig({ steps_offset: 1, beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 }));
    assert.doesNotThrow(() => loadScheduler(fixture("unet-tiny")));
  });
});
