// The CLI as scripts use it: --version, exit codes by kind of failure (documented in --help), and
// --json output that is one JSON object on stdout.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fixture, repoRoot, scratchDir, tinyImageFolder } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-scripting-");
after(() => rmSync(scratch, { recursive: true, force: true }));
const main = join(repoRoot(), "dist", "src", "cli", "main.js");
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, DIFFPRUNE_NUM_THREADS: "1" } });

describe("diffprune as a scripted command", () => {
  test("--version prints package.json's version", () => {
    const r = run("--version");
    assert.equal(r.status, 0, r.stderr);
    const { version } = JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")) as { version: string };
    assert.equal(r.stdout.trim(), version);
  });

  test("exit codes: 0 help, 2 a wrong command line, 1 a command that failed; --help documents them", () => {
    const help = run("prune", "--help");
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Exit codes: 0 done; 1 the command failed .*; 2 the command line is wrong/s);
    for (const args of [["nope"], ["prune", "--ratio", "x"], ["count", "--bogus"], ["prune", "--model", fixture("unet-tiny")]]) {
      const r = run(...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^diffprune: .*\(add --help for usage\)\n$/);
    }
    const failed = run("count", "--model", join(scratch, "no-such-model"));
    assert.equal(failed.status, 1, failed.stderr);
    assert.match(failed.stderr, /^diffprune: .*no such folder/);
    const refused = run("prune", "--model", fixture("unet-tiny"), "--method", "magnitude", "--ratio", "0", "--out", join(scratch, "r0"));
    assert.equal(refused.status, 1, refused.stderr);
  });

  test("train --json prints one JSON object: the run folder, the model folder, steps and weights", () => {
    const images = tinyImageFolder(join(scratch, "images"));
    const out = join(scratch, "train");
    const r = run("finetune", "--model", fixture("unet-tiny"), "--data", `folder:${images}`, "--out", out, "--steps", "2", "--batch-size", "2", "--warmup", "0", "--json");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { out, model: join(out, "model"), steps: 2, weights: "ema" });
    const config = JSON.parse(readFileSync(join(out, "train_config.json"), "utf8")) as Record<string, unknown>;
    assert.ok(!("json" in config), "the output format is not a training option");
  });
});
