// Output paths: refused before any work when they cannot be written or would overwrite an input,
// folders made one level at a time, and folders written whole (a reader sees the old one or the
// new one; a failure or a kill leaves nothing that a later write does not remove).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { checkOutputs, isWithin, makeDirs, onlyHolds, OutputPathError, writeFileMakingDirs, writeFolderAtomic, type OutputPath } from "../../src/io/paths.js";
import { scratchDir } from "../helpers/fixtures.js";

const dir = scratchDir("diffprune-paths-");
after(() => rmSync(dir, { recursive: true, force: true }));

const folder = (path: string, extra: Partial<OutputPath> = {}): OutputPath => ({ flag: "--out", path, kind: "folder", ...extra });
const file = (path: string): OutputPath => ({ flag: "--out", path, kind: "file" });
const refused = (fn: () => void, message: RegExp) => assert.throws(fn, (err: unknown) => err instanceof OutputPathError && message.test(err.message) && !err.message.includes("\n"));

/** A pid that no process has now. */
const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid!;

describe("checkOutputs", () => {
  const model = join(dir, "model");
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, "config.json"), "{}");
  const aFile = join(dir, "a-file");
  writeFileSync(aFile, "x");

  test("new paths under writable folders pass, and nothing is created", () => {
    checkOutputs([folder(join(dir, "new", "deep", "out"))], [{ flag: "--model", path: model }]);
    checkOutputs([file(join(dir, "new2", "metrics.json"))]);
    assert.ok(!existsSync(join(dir, "new")) && !existsSync(join(dir, "new2")));
  });

  test("an empty path, a file for a folder, a folder for a file, a path under a file", () => {
    refused(() => checkOutputs([folder("")]), /^--out is empty: give a folder path$/);
    refused(() => checkOutputs([folder(aFile)]), /: it is a file, but --out takes a folder/);
    refused(() => checkOutputs([file(model)]), /: it is a folder, but --out takes a file path/);
    refused(() => checkOutputs([folder(join(aFile, "x", "y"))]), /a-file is a file, so a folder cannot be made under it/);
  });

  test("pseudo file systems are refused by name, at once", () => {
    for (const p of ["/proc/x", "/proc/self/fd/x", "/sys/x", "/dev/x"]) refused(() => checkOutputs([folder(p)]), /is a pseudo file system, not a place for files/);
    refused(() => checkOutputs([file("/proc/x.json")]), /choose a file on disk/);
  });

  test("an output equal to, inside or around an input (through a symlink too)", () => {
    const input = [{ flag: "--model", path: model }];
    refused(() => checkOutputs([folder(model)], input), /it is the --model folder; write elsewhere/);
    refused(() => checkOutputs([file(join(model, "config.json"))], input), /it is inside the --model folder/);
    refused(() => checkOutputs([folder(dir)], input), /it holds the --model folder .*model, which writing there would replace/);
    refused(() => checkOutputs([file(aFile)], [{ flag: "--log", path: aFile }]), /it is the --log file/);
    const link = join(dir, "link-to-model");
    symlinkSync(model, link);
    refused(() => checkOutputs([file(join(link, "metrics.json"))], input), /inside the --model folder/);
    refused(() => checkOutputs([folder(join(model, "..", "model"))], input), /it is the --model folder/);
  });

  test("two outputs that overlap", () => {
    refused(() => checkOutputs([folder(join(dir, "o")), { flag: "--samples", path: join(dir, "o", "s"), kind: "folder" }]), /--out .* and --samples .* overlap/);
  });

  test("an existing folder is checked by its reuse rule, temp files left out", () => {
    const old = join(dir, "old-output");
    mkdirSync(old);
    writeFileSync(join(old, "grid.png"), "");
    writeFileSync(join(old, `.grid.png.${deadPid()}.0123456789ab.tmp`), "");
    const rule = onlyHolds("samples", (n) => n === "grid.png");
    checkOutputs([folder(old, { reuse: rule })]);
    writeFileSync(join(old, "notes.txt"), "");
    refused(() => checkOutputs([folder(old, { reuse: rule })]), /it holds notes\.txt, which are not samples; choose a new or empty folder/);
  });

  test("unwritable folders are refused (as a user without root)", { skip: process.getuid?.() === 0 ? "root writes anywhere" : false }, () => {
    const ro = join(dir, "read-only");
    mkdirSync(ro, { mode: 0o555 });
    refused(() => checkOutputs([folder(join(ro, "out"))]), /no permission to write in/);
  });

  test("isWithin compares whole path parts", () => {
    assert.ok(isWithin("/a/b/c", "/a/b"));
    assert.ok(isWithin("/a/b", "/a/b"));
    assert.ok(!isWithin("/a/bc", "/a/b"));
    assert.ok(!isWithin("/a/..b", "/a/b"));
  });
});

describe("makeDirs", () => {
  test("makes the missing folders one level at a time and returns them, outermost first", () => {
    const target = join(dir, "m1", "m2", "m3");
    assert.deepEqual(makeDirs(target), [join(dir, "m1"), join(dir, "m1", "m2"), target]);
    assert.deepEqual(makeDirs(target), []);
  });

  test("fails at once with the path on a pseudo file system (a recursive mkdir spins on /proc)", () => {
    const start = Date.now();
    assert.throws(() => makeDirs("/proc/diffprune-x/y"), /cannot write \/proc\/diffprune-x: \/proc takes no new files \(ENOENT\)/);
    assert.ok(Date.now() - start < 1000);
  });

  test("names a file in the way", () => {
    const f = join(dir, "m-file");
    writeFileSync(f, "");
    assert.throws(() => makeDirs(join(f, "x")), /cannot write .*m-file: it is a file, so .*m-file\/x cannot be made \(ENOTDIR\)/);
  });
});

describe("writeFolderAtomic", () => {
  test("builds the folder beside the target and renames it into place", () => {
    const target = join(dir, "w", "new", "model");
    writeFolderAtomic(target, (d) => {
      assert.notEqual(d, target);
      assert.ok(!existsSync(target), "the target appears only when complete");
      writeFileSync(join(d, "weights"), "1");
      writeFileSync(join(d, "record"), "1");
    });
    assert.deepEqual(readdirSync(target).sort(), ["record", "weights"]);
    assert.deepEqual(readdirSync(join(dir, "w", "new")), ["model"]);
  });

  test("replaces an old folder whole: no file of the old run is left", () => {
    const target = join(dir, "w", "replace");
    writeFolderAtomic(target, (d) => ["a", "b", "c"].forEach((n) => writeFileSync(join(d, n), "old")));
    writeFolderAtomic(target, (d) => writeFileSync(join(d, "a"), "new"));
    assert.deepEqual(readdirSync(target), ["a"]);
    assert.equal(readFileSync(join(target, "a"), "utf8"), "new");
    assert.deepEqual(readdirSync(join(dir, "w")).filter((n) => n.startsWith(".")), []);
  });

  test("a failed write leaves the old folder as it was, no temp folder, and no parents it made", () => {
    const target = join(dir, "w", "keep");
    writeFolderAtomic(target, (d) => writeFileSync(join(d, "record"), "old"));
    assert.throws(() => writeFolderAtomic(target, (d) => (writeFileSync(join(d, "record"), "new"), assert.fail("the disk filled up"))), /the disk filled up/);
    assert.equal(readFileSync(join(target, "record"), "utf8"), "old");
    assert.deepEqual(readdirSync(join(dir, "w")).filter((n) => n.startsWith(".keep")), []);
    const fresh = join(dir, "w2", "a", "b");
    assert.throws(() => writeFolderAtomic(fresh, () => assert.fail("no")));
    assert.ok(!existsSync(join(dir, "w2")), "parents made for the failed write are removed");
  });

  test("a temp folder left by a killed writer is removed by the next write there; a live writer's is kept", () => {
    const parent = join(dir, "w3");
    mkdirSync(parent);
    const killed = join(parent, `.model.${deadPid()}.00112233aabb.tmp`);
    mkdirSync(killed);
    writeFileSync(join(killed, "weights"), "half");
    utimesSync(killed, new Date(Date.now() - 3600e3), new Date(Date.now() - 3600e3));
    const live = join(parent, `.other.${process.pid}.ffeeddccbbaa.tmp`); // this process's, written now
    writeFileSync(live, "");
    writeFolderAtomic(join(parent, "model"), (d) => writeFileSync(join(d, "weights"), "whole"));
    assert.deepEqual(readdirSync(parent).sort(), [`.other.${process.pid}.ffeeddccbbaa.tmp`, "model"]);
  });
});

test("writeFileMakingDirs removes the folders it made when the write fails", () => {
  const path = join(dir, "f1", "f2", "metrics.json");
  assert.throws(() => writeFileMakingDirs(path, () => assert.fail("no")));
  assert.ok(!existsSync(join(dir, "f1")));
  writeFileMakingDirs(path, (p) => writeFileSync(p, "{}"));
  assert.equal(readFileSync(path, "utf8"), "{}");
});
