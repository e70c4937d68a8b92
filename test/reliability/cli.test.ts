// The CLI's bad inputs, one real `diffprune` process each: flags that are empty, garbage or out
// of range, options that would prune nothing, initial noise that is not finite, and outputs that
// cannot be written or would overwrite an input. Each is refused before any work, in one line,
// with nothing left behind and every input as it was.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe } from "node:test";
import * as torch from "../../src/torch/index.js";
import { saveFile } from "../../src/io/index.js";
import { fixture, scratchDir } from "../helpers/fixtures.js";
import { badInputs, type BadInput } from "./harness.js";

const scratch = scratchDir("diffprune-reliability-cli-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the tiny model, for cases that might write into their input. */
const model = join(scratch, "model");
cpSync(fixture("unet-tiny"), model, { recursive: true });
const weights = join(model, "diffusion_pytorch_model.safetensors");
const aFile = join(scratch, "a-file");
writeFileSync(aFile, "not a folder\n");
/** A folder that belongs to the user: nothing a command writes. */
const userFolder = join(scratch, "user-folder");
mkdirSync(userFolder);
writeFileSync(join(userFolder, "notes.txt"), "mine\n");
/** A model folder that prune did not write (no pruning.json). */
const otherModel = join(scratch, "other-model");
mkdirSync(otherModel);
for (const f of ["config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"]) cpSync(fixture("unet-tiny", f), join(otherModel, f));
const log = join(scratch, "log.jsonl");
writeFileSync(log, '{"step":1,"loss":0.5}\n{"step":2,"loss":0.4}\n');

function noiseFile(name: string, fill: (t: torch.Tensor) => torch.Tensor, n = 2): string {
  const path = join(scratch, name);
  torch.tidy(() => saveFile({ noise: fill(torch.randn([n, 1, 16, 16])) }, path));
  return path;
}
const nanNoise = noiseFile("nan-noise.safetensors", (t) => t.mul(NaN));
const infNoise = noiseFile("inf-noise.safetensors", (t) => t.add(Infinity));
const emptyNoise = noiseFile("empty-noise.safetensors", (t) => t, 0);
/** A folder holding an input file, given as --out. */
const holder = join(scratch, "holder");
mkdirSync(holder);
const heldNoise = noiseFile(join("holder", "noise.safetensors"), (t) => t);
const heldCalibration = join(holder, "calibration.safetensors");
torch.tidy(() => saveFile({ images: torch.zeros([2, 1, 16, 16]), noise: torch.randn([2, 1, 16, 16]) }, heldCalibration));

const out = (name: string) => join(scratch, "out", name);
const prune = (...extra: string[]) => ["prune", "--model", model, "--method", "magnitude", "--ratio", "0.3", ...extra];
const sample = (...extra: string[]) => ["sample", "--model", model, "--num", "2", "--steps", "2", ...extra];
const evaluate = (...extra: string[]) => ["eval", "--model", model, "--latency", "--latency-batch", "1", "--repeats", "1", ...extra];
const train = (...extra: string[]) => ["train", "--config", fixture("unet-tiny", "config.json"), "--data", "fashion-mnist:test", "--steps", "1", "--batch-size", "2", ...extra];
const finetune = (...extra: string[]) => ["finetune", "--model", model, "--data", "fashion-mnist:test", "--steps", "1", "--batch-size", "2", ...extra];
const demo = (...extra: string[]) => ["demo", "--model", model, "--data", "fashion-mnist:test", "--finetune-steps", "1", "--num-samples", "2", "--sampling-steps", "2", "--methods", "magnitude", ...extra];
const classifier = (...extra: string[]) => ["train-classifier", "--epochs", "1", "--limit", "8", "--test-limit", "8", ...extra];

/** A flag refused by its parser: commander names the flag, the parser says what it expected. */
function flag(command: string[], name: string, value: string, expected: RegExp, outPath: string): BadInput {
  return {
    name: `${command[0]} ${name} ${JSON.stringify(value)}`,
    args: [...command, name, value, "--out", outPath],
    message: new RegExp(`option '${name} <\\w+>' argument .* is invalid\\. .*${expected.source}`),
    noOutput: [outPath],
    unchanged: [model],
  };
}

describe("numeric flags: empty, garbage, NaN, Infinity and out-of-range values are refused naming the flag", () => {
  const o = out("flags");
  badInputs([
    flag(prune(), "--ratio", "", /expected a number in \[0, 1\), got an empty value/, o),
    flag(prune(), "--ratio", " ", /got an empty value/, o),
    flag(prune(), "--ratio", "abc", /expected a number in \[0, 1\), got "abc"/, o),
    flag(prune(), "--ratio", "NaN", /got "NaN"/, o),
    flag(prune(), "--ratio", "Infinity", /got "Infinity"/, o),
    flag(prune(), "--ratio", "0x1", /got "0x1"/, o),
    flag(prune(), "--ratio", "1", /expected a number in \[0, 1\), got 1/, o),
    flag(prune(), "--ratio", "-0.1", /got -0.1/, o),
    flag(prune(), "--thr", "", /got an empty value/, o),
    flag(prune(), "--calib-batch", "0", /expected a positive integer/, o),
    flag(prune(), "--calib-batch", "2.5", /expected a positive integer/, o),
    flag(prune(), "--seed", "", /expected a non-negative integer, got an empty value/, o),
    flag(prune(), "--seed", "-1", /expected a non-negative integer/, o),
    flag(prune(), "--round-to", "0", /expected a positive integer/, o),
    flag(prune(), "--round-to", "", /got an empty value/, o),
    flag(prune(), "--max-ratio", "1.5", /expected a number in \(0, 1\]/, o),
    flag(prune(), "--max-ratio", "0", /expected a number in \(0, 1\], got 0/, o),
    flag(prune(), "--iterative-steps", "", /got an empty value/, o),
    flag(sample(), "--steps", "", /expected a positive integer, got an empty value/, o),
    flag(sample(), "--num", "1e400", /got "1e400"/, o),
    flag(sample(), "--eta", "2", /expected a number in \[0, 1\]/, o),
    flag(sample(), "--batch-size", "-3", /expected a positive integer/, o),
    flag(sample(), "--seed", "1.5", /expected a non-negative integer/, o),
    flag(evaluate(), "--num", "", /got an empty value/, join(o, "metrics.json")),
    flag(evaluate(), "--repeats", "0", /expected a positive integer/, join(o, "metrics.json")),
    flag(evaluate(), "--latency-batch", "abc", /got "abc"/, join(o, "metrics.json")),
    flag(evaluate(), "--data-limit", "0", /expected a positive integer/, join(o, "metrics.json")),
    flag(train(), "--lr", "1e30", /expected a learning rate in \(0, 1\], got 1e30/, o),
    flag(train(), "--lr", "-1", /expected a learning rate/, o),
    flag(train(), "--lr", "NaN", /expected a learning rate/, o),
    flag(train(), "--lr", "", /got an empty value/, o),
    flag(train(), "--steps", "0", /expected a positive integer/, o),
    flag(train(), "--grad-clip", "", /expected a number >= 0, got an empty value/, o),
    flag(train(), "--grad-clip", "-1", /expected a number >= 0/, o),
    flag(train(), "--dropout", "1", /expected a number in \[0, 1\)/, o),
    flag(train(), "--warmup", "-5", /expected a non-negative integer/, o),
    flag(finetune(), "--lr", "2", /expected a learning rate in \(0, 1\]/, o),
    flag(classifier(), "--lr", "1e30", /expected a learning rate/, o),
    flag(classifier(), "--epochs", "0", /expected a positive integer/, o),
    flag(demo(), "--lr", "1e30", /expected a learning rate/, o),
    flag(demo(), "--ratio", "", /got an empty value/, o),
    flag(demo(), "--num-samples", "0", /expected a positive integer/, o),
    { name: "count --seed \"\"", args: ["count", "--model", model, "--seed", ""], message: /option '--seed <n>' argument '' is invalid/ },
  ]);
});

describe("prune options that would prune nothing are refused before the gradients (or written with --allow-unchanged)", () => {
  badInputs([
    { name: "prune --ratio 0", args: prune("--ratio", "0", "--out", out("r0")), message: /--ratio 0 prunes nothing.*--allow-unchanged/, noOutput: [out("r0")], unchanged: [model] },
    { name: "prune --round-to 1000", args: prune("--round-to", "1000", "--out", out("rt")), message: /--round-to 1000 is not below any group's channel count \(the largest has 128\)/, noOutput: [out("rt")] },
    { name: "prune --ignore every layer", args: prune("--ignore", "conv_in,time_embedding,down_blocks,mid_block,up_blocks,conv_norm_out", "--out", out("ign")), message: /no group of channels can be pruned/, noOutput: [out("ign")] },
    { name: "prune --global --round-to 1000", args: prune("--global", "--round-to", "1000", "--out", out("rtg")), message: /--round-to 1000 .*nothing would be pruned/, noOutput: [out("rtg")] },
    {
      name: "prune taylor --round-to 1000 refuses before reading the calibration data",
      args: prune("--method", "taylor", "--round-to", "1000", "--data", "fashion-mnist:test", "--out", out("rtt")),
      message: /nothing would be pruned/,
      noOutput: [out("rtt")],
    },
    { name: "prune --round-to 1000 --allow-unchanged writes it with a warning", args: prune("--round-to", "1000", "--allow-unchanged", "--out", out("rt-ok")), message: /^warning: --round-to 1000 .*writing it anyway/, warning: true },
    { name: "prune --round-to 48 warns which groups stay whole", args: prune("--round-to", "48", "--out", out("rt48")), message: /^warning: --round-to 48 leaves groups of 32 channels whole/, warning: true },
  ]);
});

describe("initial noise that is not finite or empty is refused naming the file", () => {
  badInputs([
    { name: "sample --init-noise with NaN", args: sample("--init-noise", nanNoise, "--out", out("nan")), message: new RegExp(`${nanNoise}: noise holds 512 NaN or infinite values`), noOutput: [out("nan")], unchanged: [nanNoise] },
    { name: "sample --init-noise with +Inf", args: sample("--init-noise", infNoise, "--out", out("inf")), message: /inf-noise\.safetensors: noise holds 512 NaN or infinite values/, noOutput: [out("inf")] },
    { name: "sample --init-noise with no samples", args: sample("--init-noise", emptyNoise, "--out", out("empty")), message: /empty-noise\.safetensors: noise holds no samples/, noOutput: [out("empty")] },
    {
      name: "eval --init-noise with NaN",
      args: ["eval", "--model", model, "--reference", model, "--ssim", "--steps", "2", "--init-noise", nanNoise, "--out", join(out("eval-nan"), "metrics.json")],
      message: /nan-noise\.safetensors: noise holds 512 NaN or infinite values/,
      noOutput: [out("eval-nan")],
    },
  ]);
});

describe("outputs are checked before any work and never overwrite an input", () => {
  const notInput = /write elsewhere \(inputs are never overwritten\)/;
  badInputs([
    // prune
    { name: "prune --out equal to --model", args: prune("--out", model), message: new RegExp(`--out ${model}: it is the --model folder; ${notInput.source}`), unchanged: [model] },
    { name: "prune --out inside --model", args: prune("--out", join(model, "pruned")), message: /it is inside the --model folder/, noOutput: [join(model, "pruned")], unchanged: [model] },
    { name: "prune --out around --model", args: () => prune("--out", scratch), message: /it holds the --model folder/, unchanged: [model] },
    { name: "prune --out an existing file", args: prune("--out", aFile), message: /--out .*a-file: it is a file, but --out takes a folder/, unchanged: [aFile] },
    { name: "prune --out under a file", args: prune("--out", join(aFile, "x")), message: /a-file is a file, so a folder cannot be made under it/, unchanged: [aFile] },
    { name: "prune --out /proc/x (pseudo file system, no spinning)", args: prune("--out", "/proc/diffprune-x"), message: /--out \/proc\/diffprune-x: \/proc is a pseudo file system/, noOutput: ["/proc/diffprune-x"], timeoutMs: 30_000 },
    { name: "prune --out /sys/x", args: prune("--out", "/sys/diffprune-x/y"), message: /\/sys is a pseudo file system/, timeoutMs: 30_000 },
    { name: "prune --out /dev/x", args: prune("--out", "/dev/diffprune-x"), message: /\/dev is a pseudo file system/, noOutput: ["/dev/diffprune-x"], timeoutMs: 30_000 },
    { name: "prune --out \"\"", args: prune("--out", ""), message: /--out is empty: give a folder path/ },
    { name: "prune --out a folder of the user's files", args: prune("--out", userFolder), message: /it holds notes\.txt, which are not a pruned model; choose a new or empty folder/, unchanged: [userFolder] },
    { name: "prune --out a model folder prune did not write", args: prune("--out", otherModel), message: /holds a model without pruning\.json/, unchanged: [otherModel] },
    {
      name: "prune --out holding the --calibration file",
      args: prune("--method", "taylor", "--calibration", heldCalibration, "--out", holder),
      message: /it holds the --calibration file .*calibration\.safetensors, which writing there would replace/,
      unchanged: [holder],
    },
    { name: "prune --config inside --out", args: ["prune", "--config", join(model, "config.json"), "--method", "magnitude", "--ratio", "0.3", "--out", model], message: /it holds the --config file/, unchanged: [model] },
    // sample
    { name: "sample --out equal to --model", args: sample("--out", model), message: /it is the --model folder/, unchanged: [model] },
    { name: "sample --out inside --model", args: sample("--out", join(model, "samples")), message: /inside the --model folder/, noOutput: [join(model, "samples")], unchanged: [model] },
    { name: "sample --out an existing file", args: sample("--out", aFile), message: /it is a file, but --out takes a folder/, unchanged: [aFile] },
    { name: "sample --out /proc/self/x", args: sample("--out", "/proc/self/diffprune-x"), message: /\/proc is a pseudo file system/, timeoutMs: 30_000 },
    { name: "sample --out holding the --init-noise file", args: sample("--init-noise", heldNoise, "--out", holder), message: /it holds the --init-noise file/, unchanged: [holder] },
    { name: "sample --out a folder of the user's files", args: sample("--out", userFolder), message: /it holds notes\.txt, which are not samples/, unchanged: [userFolder] },
    // eval
    { name: "eval --out the model's weights", args: evaluate("--out", weights), message: /--out .*diffusion_pytorch_model\.safetensors: it is inside the --model folder/, unchanged: [model] },
    { name: "eval --out inside --reference", args: evaluate("--reference", otherModel, "--out", join(otherModel, "metrics.json")), message: /inside the --reference folder/, noOutput: [join(otherModel, "metrics.json")], unchanged: [otherModel] },
    { name: "eval --out the --init-noise file", args: ["eval", "--model", fixture("unet-tiny"), "--reference", fixture("unet-tiny"), "--ssim", "--init-noise", heldNoise, "--out", heldNoise], message: /it is the --init-noise file/, unchanged: [heldNoise] },
    { name: "eval --out an existing folder", args: evaluate("--out", userFolder), message: /it is a folder, but --out takes a file path/, unchanged: [userFolder] },
    { name: "eval --out under a file", args: evaluate("--out", join(aFile, "metrics.json")), message: /a-file is a file, so a file cannot be made under it/, unchanged: [aFile] },
    { name: "eval --out /proc/x.json", args: evaluate("--out", "/proc/diffprune.json"), message: /\/proc is a pseudo file system/, timeoutMs: 30_000 },
    {
      name: "eval with a missing model makes no --out folders",
      args: ["eval", "--model", join(scratch, "no-model"), "--latency", "--out", join(out("eval-new"), "a", "metrics.json")],
      message: /no-model: no such folder/,
      noOutput: [out("eval-new")],
    },
    // plot
    { name: "plot --out the --log file", args: ["plot", "--log", log, "--out", log], message: /it is the --log file/, unchanged: [log] },
    { name: "plot --out an existing folder", args: ["plot", "--log", log, "--out", userFolder], message: /it is a folder, but --out takes a file path/, unchanged: [userFolder] },
    { name: "plot --out /sys/x.svg", args: ["plot", "--log", log, "--out", "/sys/diffprune.svg"], message: /\/sys is a pseudo file system/, timeoutMs: 30_000 },
    // train, finetune
    { name: "finetune --out equal to --model", args: finetune("--out", model), message: /it is the --model folder/, unchanged: [model] },
    { name: "finetune --out inside --model", args: finetune("--out", join(model, "run")), message: /inside the --model folder/, noOutput: [join(model, "run")], unchanged: [model] },
    { name: "train --out holding the --config file", args: ["train", "--config", join(model, "config.json"), "--data", "fashion-mnist:test", "--steps", "1", "--out", model], message: /it holds the --config file/, unchanged: [model] },
    { name: "train --out an existing file", args: train("--out", aFile), message: /it is a file, but --out takes a folder/, unchanged: [aFile] },
    { name: "train --out a folder that is not a run", args: train("--out", userFolder), message: /the folder is not empty and is not a training run \(it holds notes\.txt\)/, unchanged: [userFolder] },
    { name: "train --out /proc/x", args: train("--out", "/proc/diffprune-run"), message: /\/proc is a pseudo file system/, timeoutMs: 30_000 },
    { name: "train --out the --data folder", args: train("--data", `folder:${userFolder}`, "--out", userFolder), message: /it is the --data folder/, unchanged: [userFolder] },
    // train-classifier
    { name: "train-classifier --out an existing file", args: classifier("--out", aFile), message: /it is a file, but --out takes a folder/, unchanged: [aFile] },
    { name: "train-classifier --out a model folder", args: classifier("--out", model), message: /which are not a classifier/, unchanged: [model] },
    { name: "train-classifier --out /proc/x", args: classifier("--out", "/proc/diffprune-classifier"), message: /\/proc is a pseudo file system/, timeoutMs: 30_000 },
    {
      name: "train that fails before its first step leaves no run folder",
      args: train("--batch-size", "20000", "--out", join(out("train-new"), "run")),
      message: /batchSize 20000 .* leaves no batch/,
      noOutput: [out("train-new")],
    },
    { name: "train --out \"\"", args: train("--out", ""), message: /--out is empty: give a folder path/ },
    // demo
    { name: "demo --out equal to --model", args: demo("--out", model), message: /it is the --model folder/, unchanged: [model] },
    { name: "demo --out inside --model", args: demo("--out", join(model, "demo")), message: /inside the --model folder/, noOutput: [join(model, "demo")], unchanged: [model] },
    { name: "demo --out a folder that holds no demo run", args: demo("--out", userFolder), message: /not empty and holds no demo run/, unchanged: [userFolder] },
    { name: "demo --out an existing file", args: demo("--out", aFile), message: /it is a file, but --out takes a folder/, unchanged: [aFile] },
    { name: "demo --out inside the --data folder", args: demo("--data", `folder:${userFolder}`, "--out", join(userFolder, "run")), message: /inside the --data folder/, noOutput: [join(userFolder, "run")], unchanged: [userFolder] },
    { name: "demo --out /proc/x", args: demo("--out", "/proc/diffprune-demo"), message: /\/proc is a pseudo file system/, timeoutMs: 30_000 },
    // more empty paths, and outputs under files
    { name: "sample --out \"\"", args: sample("--out", ""), message: /--out is empty: give a folder path/ },
    { name: "eval --out \"\"", args: evaluate("--out", ""), message: /--out is empty: give a file path/ },
    { name: "plot --out under a file", args: ["plot", "--log", log, "--out", join(aFile, "loss.svg")], message: /a-file is a file, so a file cannot be made under it/, unchanged: [aFile] },
  ]);
});

describe("input files that are missing or folders are refused naming the flag, before any work", () => {
  const missing = join(scratch, "missing.safetensors");
  badInputs([
    { name: "sample --init-noise missing", args: sample("--init-noise", missing, "--out", out("in1")), message: /--init-noise .*missing\.safetensors: no such file$/, noOutput: [out("in1")] },
    { name: "sample --init-noise a folder", args: sample("--init-noise", userFolder, "--out", out("in2")), message: /--init-noise .*user-folder: it is a folder; --init-noise takes a file/, noOutput: [out("in2")] },
    { name: "eval --init-noise missing", args: ["eval", "--model", model, "--reference", model, "--ssim", "--init-noise", missing, "--out", join(out("in3"), "m.json")], message: /--init-noise .*: no such file/, noOutput: [out("in3")] },
    { name: "eval --inception-weights missing", args: evaluate("--fid", "--extractor", "inception", "--inception-weights", missing, "--out", join(out("in4"), "m.json")), message: /--inception-weights .*: no such file/, noOutput: [out("in4")] },
    { name: "prune --calibration missing", args: prune("--method", "taylor", "--calibration", missing, "--out", out("in5")), message: /--calibration .*: no such file/, noOutput: [out("in5")] },
    { name: "prune --config a folder", args: ["prune", "--config", model, "--method", "magnitude", "--ratio", "0.3", "--out", out("in6")], message: /--config .*: it is a folder; --config takes a file/, noOutput: [out("in6")] },
    { name: "plot --log missing", args: ["plot", "--log", join(scratch, "no-log.jsonl"), "--out", join(out("in7"), "loss.svg")], message: /--log .*no-log\.jsonl: no such file/, noOutput: [out("in7")] },
  ]);
});
