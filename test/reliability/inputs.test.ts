// Bad models, configs, schedulers and calibration batches, one real `diffprune` process each,
// through every command that reads them: weights that are not finite or not float, a header
// with a key twice, config values of the wrong type or out of range, configs too large to
// allocate, betas outside (0, 1), calibration batches that cannot score channels. Each is refused
// before any work, in one line naming the file and the key or tensor, with nothing left behind
// and the input as it was.
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe } from "node:test";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { loadFile, saveFile } from "../../src/io/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { badInputs, type BadInput } from "./harness.js";

const scratch = scratchDir("diffprune-reliability-inputs-");
after(() => rmSync(scratch, { recursive: true, force: true }));

const WEIGHTS = "diffusion_pytorch_model.safetensors";
const tinyConfig = JSON.parse(readFileSync(fixture("unet-tiny", "config.json"), "utf8")) as Record<string, unknown>;
const tinySchedule = JSON.parse(readFileSync(fixture("unet-tiny", "scheduler_config.json"), "utf8")) as Record<string, unknown>;

/** A copy of unet-tiny under `name`, its config.json, scheduler_config.json or weights changed. */
function modelWith(name: string, change: { config?: Record<string, unknown>; scheduler?: Record<string, unknown>; weights?: (w: Map<string, Tensor>) => void }): string {
  const dir = join(scratch, name);
  cpSync(fixture("unet-tiny"), dir, { recursive: true });
  if (change.config) writeFileSync(join(dir, "config.json"), JSON.stringify({ ...tinyConfig, ...change.config }));
  if (change.scheduler) writeFileSync(join(dir, "scheduler_config.json"), JSON.stringify({ ...tinySchedule, ...change.scheduler }));
  if (change.weights) {
    const w = loadFile(join(dir, WEIGHTS));
    torch.tidy(() => {
      change.weights!(w);
      saveFile(w, join(dir, WEIGHTS));
    });
  }
  return dir;
}

/** A config.json alone (for --config), unet-tiny's with `patch`. */
function configWith(name: string, patch: Record<string, unknown>): string {
  const path = join(scratch, `${name}.config.json`);
  writeFileSync(path, JSON.stringify({ ...tinyConfig, ...patch }));
  return path;
}

/** `t` with its first element set to `v`. */
function withFirst(t: Tensor, v: number): Tensor {
  const a = Float32Array.from(t.toTypedArray() as Float32Array);
  a[0] = v;
  return torch.tensor(a, { shape: [...t.shape] });
}

// ---- the bad inputs ----

const allNaN = modelWith("all-nan", { weights: (w) => w.forEach((t, k) => w.set(k, torch.full([...t.shape], NaN))) });
const posInf = modelWith("pos-inf", { weights: (w) => w.set("mid_block.attentions.0.to_q.weight", withFirst(w.get("mid_block.attentions.0.to_q.weight")!, Infinity)) });
const negInf = modelWith("neg-inf", { weights: (w) => w.set("conv_out.bias", withFirst(w.get("conv_out.bias")!, -Infinity)) });
const oneNaN = modelWith("one-nan", { weights: (w) => w.set("up_blocks.1.resnets.1.conv2.weight", withFirst(w.get("up_blocks.1.resnets.1.conv2.weight")!, NaN)) });
const intConv = modelWith("i32-conv", { weights: (w) => w.set("conv_in.weight", w.get("conv_in.weight")!.to("int32")) });
const boolBias = modelWith("bool-bias", { weights: (w) => w.set("conv_in.bias", w.get("conv_in.bias")!.gt(0)) });

/** unet-tiny with its header naming conv_in.bias twice (the same entry: only the repeat is wrong). */
const duplicate = (() => {
  const dir = modelWith("duplicate-key", {});
  const bytes = readFileSync(join(dir, WEIGHTS));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = bytes.subarray(8, 8 + n).toString("utf8").trimEnd();
  const entry = /"conv_in\.bias":\{[^}]*\}/.exec(header)![0];
  const json = Buffer.from(`${header.slice(0, -1)},${entry}}`, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(join(dir, WEIGHTS), Buffer.concat([length, json, bytes.subarray(8 + n)]));
  return dir;
})();

const freqShift = modelWith("freq-shift", { config: { freq_shift: "abc" } });
const headDim = modelWith("head-dim-7", { config: { attention_head_dim: 7 } });
const gelu = modelWith("gelu", { config: { act_fn: "gelu" } });
const threeLevels = { block_out_channels: [32, 64, 64], down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"] };
const size30 = modelWith("sample-size-30", { config: { ...threeLevels, sample_size: 30 } });
const shortList = modelWith("short-list", { config: { down_block_types: ["DownBlock2D"] } });
const groups = modelWith("groups-12", { config: { norm_num_groups: 12 } });
const unknownBlock = modelWith("unknown-block", { config: { down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"] } });
const hugeLayers = modelWith("layers-1e7", { config: { layers_per_block: 1e7 } });
const padding = modelWith("padding-2", { config: { downsample_padding: 2 } });
const flip = modelWith("flip-yes", { config: { flip_sin_to_cos: "yes" } });

const betaEnd = modelWith("beta-end-2", { scheduler: { beta_end: 2.0 } });
const decreasing = modelWith("betas-decreasing", { scheduler: { beta_start: 0.02, beta_end: 0.0001 } });
const trained = modelWith("trained-betas", { scheduler: { num_train_timesteps: 3, trained_betas: [0.1, 0.5, 1.5] } });
const zeroSteps = modelWith("timesteps-0", { scheduler: { num_train_timesteps: 0 } });
const fractionalSteps = modelWith("timesteps-1.5", { scheduler: { num_train_timesteps: 1.5 } });

const negativeLayers = configWith("layers-negative", { layers_per_block: -1 });
const fractionalLayers = configWith("layers-fraction", { layers_per_block: 1.5 });
const zeroSize = configWith("sample-size-0", { sample_size: 0 });
const hugeConfig = configWith("layers-1e7", { layers_per_block: 1e7 });
const millions = configWith("channels-millions", { block_out_channels: [1_048_576, 2_097_152] });
const config30 = configWith("sample-size-30", { ...threeLevels, sample_size: 30 });
const eps = configWith("norm-eps-0", { norm_eps: 0 });
const classes = configWith("class-projection", { class_embed_type: "projection", projection_class_embeddings_input_dim: 8 });
const stringCount = configWith("in-channels-string", { in_channels: "1" });
const longUp = configWith("up-list-longer", { up_block_types: ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"] });

/** A calibration file for unet-tiny (1 channel, 16 x 16). */
function calibration(name: string, images: () => Tensor, noise: () => Tensor = () => torch.randn([2, 1, 16, 16])): string {
  const path = join(scratch, `${name}.safetensors`);
  torch.tidy(() => saveFile({ images: images(), noise: noise() }, path));
  return path;
}
const noImages = calibration("calib-empty", () => torch.zeros([0, 1, 16, 16]), () => torch.zeros([0, 1, 16, 16]));
const zeroImages = calibration("calib-zeros", () => torch.zeros([2, 1, 16, 16]));
const nanImages = calibration("calib-nan", () => torch.full([2, 1, 16, 16], NaN));
const infNoise = calibration("calib-inf-noise", () => torch.rand([2, 1, 16, 16]).mul(2).sub(1), () => torch.full([2, 1, 16, 16], Infinity));
const zeroNoise = calibration("calib-zero-noise", () => torch.rand([2, 1, 16, 16]).mul(2).sub(1), () => torch.zeros([2, 1, 16, 16]));
const pixels = calibration("calib-pixels", () => torch.rand([2, 1, 16, 16]).mul(255));

// ---- the commands that read them ----

const out = (name: string): string => join(scratch, "out", name);
const sample = (model: string, o: string): string[] => ["sample", "--model", model, "--num", "1", "--steps", "2", "--out", o];
const evaluate = (model: string, o: string): string[] => ["eval", "--model", model, "--latency", "--latency-batch", "1", "--repeats", "1", "--out", join(o, "metrics.json")];
const prune = (model: string, o: string): string[] => ["prune", "--model", model, "--method", "magnitude", "--ratio", "0.3", "--out", o];
const finetune = (model: string, o: string): string[] => ["finetune", "--model", model, "--data", "fashion-mnist:test", "--steps", "1", "--batch-size", "2", "--out", o];
const count = (model: string): string[] => ["count", "--model", model];
const COMMANDS = { sample, eval: evaluate, prune, finetune, count } as const;
type CommandName = keyof typeof COMMANDS;

/** One row: `command` on the bad model folder `model`, refused with `message`. */
function modelCase(what: string, command: CommandName, model: string, message: RegExp): BadInput {
  const o = out(`${command}-${model.split("/").pop()}`);
  return {
    name: `${command}: ${what}`,
    args: command === "count" ? count(model) : COMMANDS[command](model, o),
    message,
    noOutput: command === "count" ? [] : [o],
    unchanged: [model],
  };
}

/** One row: `command --config file`, refused with `message`. */
function configCase(what: string, command: "count" | "prune" | "train", config: string, message: RegExp): BadInput {
  const o = out(`${command}-${config.split("/").pop()}`);
  const args = {
    count: ["count", "--config", config],
    prune: ["prune", "--config", config, "--method", "random", "--ratio", "0.3", "--out", o],
    train: ["train", "--config", config, "--data", "fashion-mnist:test", "--steps", "1", "--batch-size", "2", "--out", o],
  }[command];
  return { name: `${command} --config: ${what}`, args, message, noOutput: command === "count" ? [] : [o], unchanged: [config] };
}

const weightsFile = (model: string, rest: string): RegExp => new RegExp(`^diffprune: ${model}/${WEIGHTS}: ${rest}`);
const configFile = (model: string, rest: string): RegExp => new RegExp(`^diffprune: ${model}/config\\.json: ${rest}`);
const schedulerFile = (model: string, rest: string): RegExp => new RegExp(`^diffprune: ${model}/scheduler_config\\.json: ${rest}`);

describe("weights that are not finite floats, or a header with a key twice, are refused at load by every command", () => {
  const nanAll = weightsFile(allNaN, 'tensor "[\\w.]+" is all NaN \\(\\d+ values\\): the weights are corrupt .*use an earlier checkpoint or retrain$');
  badInputs([
    ...(["sample", "eval", "prune", "finetune", "count"] as const).map((c) => modelCase("all-NaN weights", c, allNaN, nanAll)),
    modelCase("+Inf in one weight", "sample", posInf, weightsFile(posInf, 'tensor "mid_block\\.attentions\\.0\\.to_q\\.weight" holds 1 \\+Inf of its 4096 values')),
    modelCase("+Inf in one weight", "prune", posInf, /to_q\.weight" holds 1 \+Inf/),
    modelCase("-Inf in a bias", "count", negInf, weightsFile(negInf, 'tensor "conv_out\\.bias" holds 1 -Inf of its 1 values')),
    modelCase("-Inf in a bias", "finetune", negInf, /conv_out\.bias" holds 1 -Inf/),
    modelCase("one NaN in a conv weight", "eval", oneNaN, weightsFile(oneNaN, 'tensor "up_blocks\\.1\\.resnets\\.1\\.conv2\\.weight" holds 1 NaN of its 9216 values')),
    modelCase("an I32 conv weight", "count", intConv, weightsFile(intConv, 'tensor "conv_in\\.weight" is int32 but the UNet\'s parameters are floating point')),
    modelCase("an I32 conv weight", "sample", intConv, /conv_in\.weight" is int32 but/),
    modelCase("a BOOL bias", "prune", boolBias, weightsFile(boolBias, 'tensor "conv_in\\.bias" is bool but the UNet\'s parameters are floating point')),
    modelCase("a BOOL bias", "finetune", boolBias, /conv_in\.bias" is bool but/),
    modelCase("a tensor named twice in the header", "count", duplicate, weightsFile(duplicate, 'the header names tensor "conv_in\\.bias" twice: .*re-export it$')),
    modelCase("a tensor named twice in the header", "sample", duplicate, /names tensor "conv_in\.bias" twice/),
  ]);
});

describe("config.json values of the wrong type or out of range are refused in the config's words", () => {
  badInputs([
    modelCase('freq_shift "abc"', "sample", freqShift, configFile(freqShift, 'freq_shift must be a number below half of block_out_channels\\[0\\] \\(16\\), usually 0 or 1; got "abc"$')),
    modelCase('freq_shift "abc"', "count", freqShift, /freq_shift must be a number/),
    modelCase("attention_head_dim 7 with 64 channels", "count", headDim, configFile(headDim, "attention_head_dim 7 does not divide the 64 channels of an attention block")),
    modelCase("attention_head_dim 7 with 64 channels", "prune", headDim, /attention_head_dim 7 does not divide/),
    modelCase('act_fn "gelu" (ran SiLU)', "sample", gelu, configFile(gelu, 'act_fn "gelu" is not implemented \\(only "silu", also called "swish"\\)')),
    modelCase('act_fn "gelu" (ran SiLU)', "eval", gelu, /act_fn "gelu" is not implemented/),
    modelCase('act_fn "gelu" (ran SiLU)', "finetune", gelu, /act_fn "gelu" is not implemented/),
    modelCase("sample_size 30 through 2 downsamplers (was libtorch's cat: Sizes of tensors must match)", "sample", size30, configFile(size30, "sample_size 30 does not halve evenly through the 2 downsamplers .*use a multiple of 4$")),
    modelCase("sample_size 30 through 2 downsamplers", "count", size30, /sample_size 30 does not halve evenly/),
    modelCase("down_block_types shorter than block_out_channels", "prune", shortList, configFile(shortList, "block_out_channels has 2 entries but down_block_types has 1")),
    modelCase("norm_num_groups 12 not dividing 32 channels", "count", groups, configFile(groups, "block_out_channels entry 32 is not divisible by norm_num_groups 12")),
    modelCase("an unknown block type", "sample", unknownBlock, configFile(unknownBlock, 'down_block_types\\[1\\] "CrossAttnDownBlock2D" is not supported \\(DownBlock2D, AttnDownBlock2D\\)')),
    modelCase("downsample_padding 2", "eval", padding, configFile(padding, "downsample_padding must be 0 or 1")),
    modelCase('flip_sin_to_cos "yes"', "count", flip, configFile(flip, 'flip_sin_to_cos must be true or false, got "yes"')),
    configCase("layers_per_block -1", "count", negativeLayers, /layers-negative\.config\.json: layers_per_block must be a positive integer, got -1/),
    configCase("layers_per_block 1.5", "prune", fractionalLayers, /layers-fraction\.config\.json: layers_per_block must be a positive integer, got 1\.5/),
    configCase("layers_per_block 1.5", "train", fractionalLayers, /config\.json: layers_per_block must be a positive integer, got 1\.5/),
    configCase("sample_size 0", "count", zeroSize, /sample-size-0\.config\.json: sample_size must be a positive integer, got 0/),
    configCase("sample_size 30", "train", config30, /config\.json: sample_size 30 does not halve evenly/),
    configCase("norm_eps 0", "count", eps, /norm-eps-0\.config\.json: norm_eps must be a positive number/),
    configCase("a class embedding type UNet2DModel does not have", "prune", classes, /class-projection\.config\.json: class_embed_type "projection" is not supported by UNet2DModel/),
    configCase('in_channels "1"', "count", stringCount, /in-channels-string\.config\.json: in_channels must be a positive integer, got "1"/),
    configCase("up_block_types longer than block_out_channels", "count", longUp, /block_out_channels has 2 entries but up_block_types has 3/),
  ]);
});

describe("configs too large to allocate are refused before allocating, with the parameter count and memory", () => {
  const tooLarge = /this config makes a UNet of [\d,]+ parameters \([\d.]+ [TP]B of float32 weights, [\d.]+ [TP]B with one forward pass at batch 1\), more than this machine's [\d.]+ GB of memory; layers_per_block/;
  badInputs([
    configCase("layers_per_block 1e7 (ran until killed)", "count", hugeConfig, tooLarge),
    configCase("layers_per_block 1e7", "train", hugeConfig, tooLarge),
    configCase("layers_per_block 1e7", "prune", hugeConfig, tooLarge),
    configCase("block_out_channels in the millions", "count", millions, tooLarge),
    modelCase("layers_per_block 1e7 in a model folder", "sample", hugeLayers, configFile(hugeLayers, "this config makes a UNet of 3,003,840,400,961 parameters")),
    modelCase("layers_per_block 1e7 in a model folder", "finetune", hugeLayers, /3,003,840,400,961 parameters/),
  ]);
});

describe("scheduler_config.json: betas outside (0, 1), decreasing, or a bad timestep count", () => {
  const beta2 = schedulerFile(betaEnd, "beta_end 2 is not in \\(0, 1\\) .*alphas = 1 - beta must stay in \\(0, 1\\)");
  badInputs([
    ...(["sample", "eval", "prune", "finetune"] as const).map((c) => modelCase("beta_end 2.0 (negative alphas)", c, betaEnd, beta2)),
    modelCase("beta_start above beta_end", "sample", decreasing, schedulerFile(decreasing, "beta_start 0\\.02 is above beta_end 0\\.0001; betas must not decrease with t")),
    modelCase("trained_betas with 1.5", "eval", trained, schedulerFile(trained, "trained_betas\\[2\\] is 1\\.5, not in \\(0, 1\\)")),
    modelCase("num_train_timesteps 0", "prune", zeroSteps, schedulerFile(zeroSteps, "num_train_timesteps must be at least 1, got 0")),
    modelCase("num_train_timesteps 1.5", "sample", fractionalSteps, schedulerFile(fractionalSteps, "num_train_timesteps must be an integer, got 1\\.5")),
  ]);
});

describe("calibration batches that cannot score channels are refused before the gradient loop", () => {
  const model = modelWith("calibration-model", {});
  const pruneWith = (file: string, method: string, o: string): string[] => ["prune", "--model", model, "--method", method, "--ratio", "0.3", "--calibration", file, "--out", o];
  const row = (what: string, file: string, method: string, rest: string): BadInput => {
    const o = out(`calib-${file.split("/").pop()}-${method}`);
    return { name: `prune ${method} --calibration: ${what}`, args: pruneWith(file, method, o), message: new RegExp(`^diffprune: ${file}: this calibration batch cannot score channels: ${rest}`), noOutput: [o], unchanged: [file, model] };
  };
  badInputs([
    row("no images (batch 0)", noImages, "taylor", "it holds no images \\(batch 0\\)"),
    row("no images (batch 0)", noImages, "diff-pruning", "it holds no images"),
    row("all-zero images", zeroImages, "diff-pruning", "images are all zeros"),
    row("NaN images", nanImages, "taylor", "images hold 512 NaN or Inf values \\(of 512\\)"),
    row("NaN images", nanImages, "diff-pruning", "images hold 512 NaN or Inf"),
    row("+Inf noise", infNoise, "diff-pruning", "noise hold 512 NaN or Inf values"),
    row("all-zero noise", zeroNoise, "taylor", "noise are all zeros"),
    row("images in [0, 255]", pixels, "diff-pruning", "images reach [\\d.]+, outside \\[-1, 1\\]"),
  ]);
});
