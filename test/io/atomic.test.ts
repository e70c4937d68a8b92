// Atomic writes: the target is replaced whole, and a failed write leaves it as it was.
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeFileAtomic, writeFileAtomicAsync, writeJsonAtomic } from "../../src/io/index.js";
import { scratchDir } from "../helpers/fixtures.js";

const dir = scratchDir();
after(() => rmSync(dir, { recursive: true, force: true }));

test("replaces the target whole and leaves no temp file", () => {
  const path = join(dir, "a.bin");
  writeFileSync(path, "old contents that are longer than the new ones");
  writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...readFileSync(path)], [1, 2, 3]);
  writeFileAtomic(path, "text ü");
  assert.equal(readFileSync(path, "utf8"), "text ü");
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("a.bin") || f.startsWith(".a.bin")), ["a.bin"]);
});

test("a write into a missing directory throws and creates nothing", () => {
  assert.throws(() => writeFileAtomic(join(dir, "no-such-dir", "x.bin"), "data"), /ENOENT/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes("no-such-dir")), []);
});

test("data that fails to write leaves the old file intact and no temp file", () => {
  const sub = join(dir, "fail");
  rmSync(sub, { recursive: true, force: true });
  writeFileSync((mkdir(sub), join(sub, "model.safetensors")), "the old checkpoint");
  const notBytes = { length: 3 } as unknown as Uint8Array; // fails after the temp file exists
  assert.throws(() => writeFileAtomic(join(sub, "model.safetensors"), notBytes), TypeError);
  assert.equal(readFileSync(join(sub, "model.safetensors"), "utf8"), "the old checkpoint");
  assert.deepEqual(readdirSync(sub), ["model.safetensors"]);
});

test("renaming onto a directory fails cleanly", () => {
  const sub = join(dir, "target-is-dir");
  mkdir(join(sub, "x"));
  writeFileSync(join(sub, "x", "inside"), "keep");
  assert.throws(() => writeFileAtomic(join(sub, "x"), "data"));
  assert.deepEqual(readdirSync(sub), ["x"]);
  assert.equal(readFileSync(join(sub, "x", "inside"), "utf8"), "keep");
});

test("the async variant replaces the target and cleans up on failure", async () => {
  const path = join(dir, "b.bin");
  writeFileSync(path, "old");
  await writeFileAtomicAsync(path, new Uint8Array([9, 8]));
  assert.deepEqual([...readFileSync(path)], [9, 8]);
  await assert.rejects(writeFileAtomicAsync(path, 42 as unknown as Uint8Array));
  assert.deepEqual([...readFileSync(path)], [9, 8]);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes("b.bin")), ["b.bin"]);
});

test("writeJsonAtomic writes pretty JSON with a trailing newline", () => {
  const path = join(dir, "config.json");
  writeJsonAtomic(path, { _class_name: "UNet2DModel", block_out_channels: [32, 64] });
  assert.equal(readFileSync(path, "utf8"), '{\n  "_class_name": "UNet2DModel",\n  "block_out_channels": [\n    32,\n    64\n  ]\n}\n');
  assert.throws(() => writeJsonAtomic(path, undefined), /not JSON-serializable/);
  assert.ok(readFileSync(path, "utf8").startsWith("{"));
});

function mkdir(path: string): void {
  mkdirSync(path, { recursive: true });
}
