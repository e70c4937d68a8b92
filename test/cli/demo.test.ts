// `diffprune demo` end to end on a tiny model and budget: a complete run folder, a report whose
// numbers are metrics.json's, a killed run that continues without redoing finished stages, and
// bad input that leaves nothing behind.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { repoRoot, scratchDir } from "../helpers/fixtures.js";
import { tinyUNet32 } from "../helpers/tiny-unet.js";

const scratch = scratchDir("diffprune-demo-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1", DIFFPRUNE_CACHE: join(scratch, "cache") };

const model = tinyUNet32(join(scratch, "tiny"));

const demoArgs = (out: string, ...extra: string[]) => [
  main, "demo", "--model", model, "--data", "fashion-mnist:test", "--out", out, "--methods", "diff-pruning,magnitude,scratch",
  "--finetune-steps", "2", "--batch-size", "2", "--num-samples", "4", "--sampling-steps", "2", "--calib-batch", "2", ...extra,
];
const run = (args: string[]) => spawnSync(process.execPath, args, { encoding: "utf8", env });

interface Row {
  name: string;
  params: number;
  macs: number;
  fid: number | null;
  ssim: number | null;
  ssim_ci95?: [number, number] | null;
  finetune_steps: number | null;
  latency_ms_batch1: number;
  speedup_batch1: number | null;
}

describe("diffprune demo", () => {
  const out = join(scratch, "run");

  test("a killed run continues without redoing finished stages, and ends with a complete folder", async () => {
    // Kill the first run once pruning is done (stage 3 starts).
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, demoArgs(out), { env });
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes("[3/6]")) child.kill("SIGKILL");
      });
      child.on("exit", () => (stdout.includes("[3/6]") ? resolve() : reject(new Error(`the demo ended before fine-tuning:\n${stdout}`))));
    });
    const pruning = join(out, "diff-pruning", "pruned", "pruning.json");
    const stamp = statSync(pruning).mtimeMs;
    assert.ok(!existsSync(join(out, "metrics.json")));

    const r = run(demoArgs(out));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /continuing the run/);
    assert.match(r.stdout, /quick look: one seed[\s\S]*diffprune study/, "the end of the output points to the study");
    assert.equal(statSync(pruning).mtimeMs, stamp, "pruning was not redone");
    assert.doesNotMatch(r.stderr, /gradients \(t until/, "no gradient loop the second time");
    for (const name of ["pretrained", "diff-pruning", "magnitude", "scratch"]) {
      for (const f of ["samples.safetensors", "grid.png", "metrics.json"]) assert.ok(existsSync(join(out, name, f)), `${name}/${f}`);
    }
    for (const m of ["diff-pruning", "magnitude", "scratch"]) assert.ok(existsSync(join(out, m, "finetune", "model", "config.json")), m);
  });

  test("metrics.json holds every row, and report.html shows the same numbers", () => {
    const metrics = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")) as { rows: Row[]; sampler: { steps: number; skip: string }; diff_pruning: { t_prime: number; losses: number[] } };
    assert.deepEqual([metrics.sampler.steps, metrics.sampler.skip], [2, "uniform"], "the paper's sampler by default");
    assert.deepEqual(metrics.rows.map((r) => r.name), ["pretrained", "diff-pruning", "magnitude", "scratch"]);
    const [pre, dp, mag, scratchRow] = metrics.rows as [Row, Row, Row, Row];
    assert.ok(dp.params < pre.params && dp.macs < pre.macs);
    assert.equal(dp.params, mag.params, "local pruning at one ratio: the same widths for every criterion");
    assert.equal(scratchRow.params, dp.params);
    assert.equal(pre.ssim, null);
    assert.ok(dp.ssim !== null && dp.ssim < 1 && dp.fid !== null && dp.fid > 0 && dp.finetune_steps === 2);
    assert.equal(metrics.diff_pruning.losses.length, metrics.diff_pruning.t_prime + 1);
    for (const r of [dp, mag, scratchRow]) assert.ok(r.ssim_ci95 && r.ssim_ci95[0] <= r.ssim! && r.ssim! <= r.ssim_ci95[1], `${r.name}: SSIM ${r.ssim} within its interval ${r.ssim_ci95}`);

    // A finished run continued with --json prints metrics.json as JSON on stdout, and only that.
    const again = run(demoArgs(out, "--json"));
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), metrics);

    const html = readFileSync(join(out, "report.html"), "utf8");
    for (const r of metrics.rows) {
      const row = new RegExp(`<tr data-method="${r.name}">([\\s\\S]*?)</tr>`).exec(html);
      assert.ok(row, `report row ${r.name}`);
      const value = (key: string) => new RegExp(`data-key="${key}"[^>]*data-value="([^"]*)"`).exec(row[1]!)?.[1];
      assert.equal(Number(value("params")), r.params);
      assert.equal(Number(value("macs")), r.macs);
      if (r.fid !== null) assert.equal(Number(value("fid")), r.fid);
      if (r.ssim !== null) assert.equal(Number(value("ssim")), r.ssim);
    }
    assert.equal((html.match(/<img /g) ?? []).length >= 4, true, "a sample grid per model");
    assert.match(html, /quick look: one seed[\s\S]*diffprune study/, "the report points to the study");
  });

  test("bad input: one line saying what to do, a non-zero exit, no run folder", () => {
    const cases: [string, string[], RegExp][] = [
      ["missing model", ["--model", join(scratch, "nope")], /no such folder/],
      ["unreadable dataset", ["--data", `folder:${join(scratch, "nothing")}`], /cannot read dataset|no such|not found/i],
      ["invalid ratio", ["--ratio", "1.5"], /expected a number in \[0, 1\)/],
      ["unknown method", ["--methods", "magnitude,best"], /unknown method "best"/],
      ["one sampling step with the paper's sampler", ["--sampling-steps", "1"], /--skip uniform \(the paper's sampler\) needs --sampling-steps 2 or more/],
    ];
    for (const [what, extra, message] of cases) {
      const dir = join(scratch, `bad-${what.replace(/ /g, "-")}`);
      const args = demoArgs(dir);
      for (let i = 0; i < extra.length; i += 2) {
        const at = args.indexOf(extra[i]!);
        if (at >= 0) args.splice(at, 2, extra[i]!, extra[i + 1]!);
        else args.push(extra[i]!, extra[i + 1]!);
      }
      const r = run(args);
      assert.notEqual(r.status, 0, what);
      assert.match(r.stderr, message, what);
      assert.equal(r.stderr.trim().split("\n").filter((l) => !l.startsWith("(add --help")).length, 1, `${what}: one line\n${r.stderr}`);
      assert.ok(!existsSync(dir), `${what}: nothing written`);
    }
  });
});

describe("diffprune demo --latent", () => {
  test("runs the comparison on the shipped latent pipeline: its UNet pruned, samples decoded to images, FID on them", () => {
    const out = join(scratch, "latent");
    const r = run([
      main, "demo", "--latent", "--data", "fashion-mnist:test", "--out", out, "--methods", "diff-pruning,magnitude",
      "--finetune-steps", "2", "--batch-size", "2", "--num-samples", "4", "--sampling-steps", "2", "--calib-batch", "2", "--json",
    ]);
    assert.equal(r.status, 0, r.stderr);
    const metrics = JSON.parse(r.stdout) as { options: { model: string }; rows: Row[] };
    assert.equal(metrics.options.model, join(repoRoot(), "models", "fashion-mnist-ldm"));
    assert.deepEqual(metrics.rows.map((row) => row.name), ["pretrained", "diff-pruning", "magnitude"]);
    const [base, ...pruned] = metrics.rows;
    assert.equal(base!.params, 4441412, "the shipped UNet's params (the autoencoder is not counted per step)");
    for (const row of pruned) {
      assert.ok(row.params < 0.6 * base!.params && row.macs < 0.6 * base!.macs, `${row.name} is pruned`);
      assert.ok(row.ssim !== null && row.ssim > 0 && row.ssim <= 1);
      assert.ok(row.fid !== null && Number.isFinite(row.fid), "FID on decoded 1x32x32 images");
    }
    // the pruned pipelines keep the shipped autoencoder, byte for byte
    const vae = (dir: string) => readFileSync(join(dir, "vae", "diffusion_pytorch_model.safetensors"));
    assert.ok(vae(join(out, "diff-pruning", "pruned")).equals(vae(join(repoRoot(), "models", "fashion-mnist-ldm"))));
    assert.doesNotMatch(readFileSync(join(out, "report.html"), "utf8"), /diffprune study/, "the study measures pixel-space models: no pointer to it here");
  });
});
