// Atomic writes: the target is replaced whole, and a failed write leaves it as it was.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { writeFileAtomic, writeFileAtomicAsync, writeJsonAtomic } from "../../src/io/index.js";
import { FileWriteError, withPath } from "../../src/io/atomic.js";
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

test("a write into a missing directory throws, naming the target, and creates nothing", () => {
  const target = join(dir, "no-such-dir", "x.bin");
  assert.throws(() => writeFileAtomic(target, "data"), { message: `cannot write ${target}: its folder ${join(dir, "no-such-dir")} does not exist (ENOENT)` });
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

test("renaming onto a directory fails cleanly, naming the target", () => {
  const sub = join(dir, "target-is-dir");
  mkdir(join(sub, "x"));
  writeFileSync(join(sub, "x", "inside"), "keep");
  assert.throws(() => writeFileAtomic(join(sub, "x"), "data"), { message: `cannot write ${join(sub, "x")}: it is a folder (EISDIR)` });
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

test("file system errors name the target (Node's ENOSPC, EACCES name none, or only the temp file)", () => {
  const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  const err = withPath(enospc, "/data/out/model.safetensors");
  assert.ok(err instanceof FileWriteError);
  assert.equal(err.message, "cannot write /data/out/model.safetensors: the disk is full (ENOSPC)");
  assert.equal(err.code, "ENOSPC");
  const eacces = Object.assign(new Error("EACCES: permission denied, open '/x/.a.1.0123456789ab.tmp'"), { code: "EACCES" });
  assert.equal((withPath(eacces, "/x/a") as Error).message, "cannot write /x/a: permission denied (EACCES)");
  const other = Object.assign(new Error("EWEIRD: something odd, open '/x/.a.tmp'"), { code: "EWEIRD" });
  assert.equal((withPath(other, "/x/a") as Error).message, "cannot write /x/a: something odd (EWEIRD)");
  const typeError = new TypeError("not bytes");
  assert.equal(withPath(typeError, "/x/a"), typeError, "errors that are not the file system's pass through");
});

test("temp files of killed writers are removed by the next write into the folder; live writers' are kept", () => {
  const sub = join(dir, "stale");
  mkdir(sub);
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  const hourAgo = new Date(Date.now() - 3600e3);
  const stale = [`.00001.png.${dead}.0123456789ab.tmp`, `.model.safetensors.${process.pid}.abcdefabcdef.tmp`]; // a dead pid; ours, but older than us (a reused pid)
  for (const name of stale) writeFileSync(join(sub, name), "half");
  for (const name of stale) utimesSync(join(sub, name), hourAgo, hourAgo);
  const kept = [`.grid.png.${process.pid}.111111111111.tmp`, `.x.${dead}.nothex.tmp`, ".hidden"]; // written now; not a temp name; the user's
  for (const name of kept) writeFileSync(join(sub, name), "");
  writeFileAtomic(join(sub, "00000.png"), "png");
  assert.deepEqual(readdirSync(sub).sort(), [...kept, "00000.png"].sort());
});

function mkdir(path: string): void {
  mkdirSync(path, { recursive: true });
}
