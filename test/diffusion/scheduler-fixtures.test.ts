// The schedulers against values diffusers 0.17 produced (test/fixtures/unet-tiny/schedulers.safetensors).
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DDIMScheduler, DDPMScheduler, loadScheduler } from "../../src/diffusion/schedulers/index.js";
import { loadFile } from "../../src/io/safetensors.js";
import { UNet2DModel } from "../../src/models/unet2d.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

const folder = fixture("unet-tiny");
const reference = loadFile(join(folder, "schedulers.safetensors"));
const get = (name: string): Tensor => {
  const t = reference.get(name);
  assert.ok(t !== undefined, `schedulers.safetensors has no ${name}`);
  return t;
};

describe("schedulers against diffusers", () => {
  test("alphas_cumprod of DDPM linear 1e-4..0.02 over 1000 steps", () => {
    assertClose(new DDPMScheduler().alphasCumprod, get("alphas_cumprod"), 1e-6);
  });

  test("add_noise(x0, noise, [10, 900])", () => {
    const timesteps = get("timesteps");
    assert.equal(timesteps.dtype, "int64");
    assert.deepEqual(timesteps.toArray(), [10, 900]);
    const noisy = new DDPMScheduler().addNoise(get("x0"), get("noise"), timesteps);
    assertClose(noisy, get("noisy"), 1e-5);
  });

  // The fixture's ddim_timesteps are 999, 888, ..., 0: numpy's linspace(0, 999, 10), which no
  // diffusers 0.17 DDIM config gives (0.17 has "leading", the default, and "trailing"; with this
  // folder's config, steps_offset 0, leading is 900, 800, ..., 0). ddim_out, below, confirms the
  // fixture was sampled with timestep_spacing "linspace", though its README says leading.
  test("ddim_timesteps are the linspace spacing (what the fixture holds today)", () => {
    const s = loadScheduler(folder);
    assert.ok(s instanceof DDIMScheduler);
    s.setTimesteps(10);
    assert.deepEqual(s.timesteps, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0], "leading, as diffusers 0.17");
    const lin = DDIMScheduler.fromConfig({ ...s.config, timestep_spacing: "linspace" });
    lin.setTimesteps(10);
    assert.deepEqual(lin.timesteps, get("ddim_timesteps").toArray());
  });

  // With those timesteps, diffusers' DDIM steps from t to t - T // n (999 -> 899, ..., 111 -> 11,
  // 0 -> clean), not to the next entry of the list: that is the only reading that reproduces
  // ddim_out (leading: 1.8 off, linspace stepping to the next entry: 0.9 off).
  test("the full DDIM loop with the folder's UNet reproduces ddim_out", () => {
    const model = UNet2DModel.fromPretrained(folder);
    const s = DDIMScheduler.fromConfig({ ...loadScheduler(folder).config, timestep_spacing: "linspace" });
    s.setTimesteps(10);
    let x = get("ddim_init");
    const batch = x.size(0);
    torch.noGrad(() => {
      for (const t of s.timesteps) {
        const next = torch.tidy(() => s.step(model.forward(x, torch.full([batch], t, { dtype: "int64" })), t, x).prevSample);
        if (x !== get("ddim_init")) x.dispose();
        x = next;
      }
    });
    // The model's 1e-6 differences grow through ten divisions by sqrt(alphas_cumprod[t]).
    const diff = torch.sub(x, get("ddim_out")).abs();
    assert.ok(diff.max().item() < 5e-4, `max |diff| ${diff.max().item()}`);
    assert.ok(diff.mean().item() < 5e-5, `mean |diff| ${diff.mean().item()}`);
  });
});
