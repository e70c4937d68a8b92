// A random-weight 1x32x32 UNet folder (the FID classifier's image size) with a short DDPM
// schedule: a model the workflows run end to end in seconds.
import { join } from "node:path";
import * as torch from "../../src/torch/index.js";
import { writeJsonAtomic } from "../../src/io/index.js";
import { UNet2DModel } from "../../src/models/index.js";

/** Writes the model (seeded weights, widths [16, 32], one attention level) and its scheduler into `dir`. */
export function tinyUNet32(dir: string, { normGroups = 8, timesteps = 20 } = {}): string {
  torch.manualSeed(0);
  const model = torch.noGrad(
    () =>
      new UNet2DModel({
        sample_size: 32, in_channels: 1, out_channels: 1, block_out_channels: [16, 32], layers_per_block: 1, norm_num_groups: normGroups,
        down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
      }),
  );
  model.savePretrained(dir);
  writeJsonAtomic(join(dir, "scheduler_config.json"), { _class_name: "DDPMScheduler", num_train_timesteps: timesteps });
  model.dispose();
  return dir;
}
