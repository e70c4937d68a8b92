// Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.
// Write to a temp file in the target's directory (same filesystem, so rename is atomic), fsync
// it, rename it over the target. On failure the temp file is removed and the target untouched.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/** A temp name beside `path`; hidden and unique, so concurrent writers never share one. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function bytesOf(data: Uint8Array | string): Uint8Array {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  // Checked at run time too: writing a non-view would silently write nothing over the target.
  if (!(data instanceof Uint8Array)) throw new TypeError(`writeFileAtomic: data must be a Uint8Array or a string, not ${Object.prototype.toString.call(data)}`);
  return data;
}

/** Makes the rename itself durable; not every platform can fsync a directory, so best effort. */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // directory fsync is unsupported here (e.g. Windows); the data itself is already synced
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // never created, or already gone
  }
}

/** Replaces `path` with `data` atomically (temp file, fsync, rename). */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o644);
    const bytes = bytesOf(data);
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    removeQuietly(tmp);
    throw err;
  }
  fsyncDir(dirname(path));
}

/** The async form of writeFileAtomic, for large checkpoints written while other work goes on. */
export async function writeFileAtomicAsync(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const handle = await open(tmp, "wx", 0o644);
    created = true;
    try {
      await handle.writeFile(bytesOf(data));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw err;
  }
  fsyncDir(dirname(path));
}

/** Pretty JSON (2-space indent, trailing newline), written atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`${path}: value is not JSON-serializable`);
  writeFileAtomic(path, text + "\n");
}
