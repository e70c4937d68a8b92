// Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.
// Write to a temp file in the target's directory (same filesystem, so rename is atomic), fsync
// it, rename it over the target. On failure the temp file is removed and the target untouched.
// A kill leaves the temp file behind; the next writer into that folder removes it.
import { closeSync, existsSync, fsyncSync, lstatSync, openSync, readdirSync, renameSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/** A file system error while writing `path`, in words, with the path (Node's own names only the temp file, or nothing). */
export class FileWriteError extends Error {
  override name = "FileWriteError";
  constructor(
    readonly path: string,
    readonly code: string,
    reason: string,
  ) {
    super(`cannot write ${path}: ${reason} (${code})`);
  }
}

const REASONS: Record<string, string> = {
  ENOSPC: "the disk is full",
  EDQUOT: "the disk quota is used up",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "the file system is read-only",
  EISDIR: "it is a folder",
  ENOTDIR: "a part of the path is a file, not a folder",
  EEXIST: "something is already there",
  ENAMETOOLONG: "the name is too long",
  EMFILE: "too many open files",
  EIO: "an input/output error",
  EXDEV: "the temp file and the target are on different file systems",
};

/** `err` with `path` named, when it is a file system error (one with a code); other errors as they are. */
export function withPath(err: unknown, path: string): unknown {
  if (err instanceof FileWriteError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== "string" || !/^E[A-Z]+$/.test(code)) return err;
  const reason = REASONS[code] ?? (err as Error).message.replace(/^E[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
  // ENOENT with the folder present: a file system that takes no new entries there (e.g. /proc).
  const missing = code === "ENOENT" && !existsSync(dirname(path));
  return new FileWriteError(path, code, missing ? `its folder ${dirname(path)} does not exist` : code === "ENOENT" ? `${dirname(path)} takes no new files` : reason);
}

/** Temp names are `.<target>.<pid>.<12 hex>.tmp`: hidden, unique, and traceable to their writer. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** A temp name beside `path`; hidden and unique, so concurrent writers never share one. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Whether `name` is a temp file (or folder) that some writer of this module made. */
export const isTempName = (name: string): boolean => TEMP_NAME.test(name);

/** When this process started (ms since the epoch): temps older than that were not written by it. */
const processStart = performance.timeOrigin;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, someone else's
  }
};

/**
 * A temp left by a writer that was killed: older than this process, and its writer is gone (or
 * its pid is ours, reused). A live writer's temp is never touched.
 */
function isStale(dir: string, name: string): boolean {
  const m = TEMP_NAME.exec(name);
  if (!m) return false;
  let mtime: number;
  try {
    mtime = lstatSync(join(dir, name)).mtimeMs;
  } catch {
    return false;
  }
  const pid = Number(m[1]);
  return mtime < processStart && (pid === process.pid || !alive(pid));
}

const cleaned = new Set<string>();

/**
 * Removes stale temp files and folders in `dir` (once per process and folder: a sample run
 * writes thousands of files into one). Returns the names removed. Best effort: a temp that
 * cannot be removed is left for the next run.
 */
export function removeStaleTemps(dir: string): string[] {
  if (cleaned.has(dir)) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // not there yet: nothing stale in it
  }
  cleaned.add(dir);
  const removed: string[] = [];
  for (const name of names) {
    if (!isStale(dir, name)) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // left for the next run
    }
  }
  return removed;
}

function bytesOf(data: Uint8Array | string): Uint8Array {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  // Checked at run time too: writing a non-view would silently write nothing over the target.
  if (!(data instanceof Uint8Array)) throw new TypeError(`writeFileAtomic: data must be a Uint8Array or a string, not ${Object.prototype.toString.call(data)}`);
  return data;
}

/** Makes the rename itself durable; not every platform can fsync a directory, so best effort. */
export function fsyncDir(dir: string): void {
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
  const bytes = bytesOf(data);
  removeStaleTemps(dirname(path));
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o644);
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    removeQuietly(tmp);
    throw withPath(err, path);
  }
  fsyncDir(dirname(path));
}

/** The async form of writeFileAtomic, for large checkpoints written while other work goes on. */
export async function writeFileAtomicAsync(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = bytesOf(data);
  removeStaleTemps(dirname(path));
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const handle = await open(tmp, "wx", 0o644);
    created = true;
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw withPath(err, path);
  }
  fsyncDir(dirname(path));
}

/** Pretty JSON (2-space indent, trailing newline), written atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`${path}: value is not JSON-serializable`);
  writeFileAtomic(path, text + "\n");
}
