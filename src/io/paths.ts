// Output paths, checked before any work and written so that a reader never sees a mix of two
// runs: a command names what it reads and what it writes, `checkOutputs` refuses a bad output
// (a file where a folder goes, an unwritable or pseudo file system, an input overwritten) in one
// line, and `writeFolderAtomic` builds a folder beside its target and renames it into place.
import { accessSync, constants, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmdirSync, rmSync, statfsSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { FileWriteError, fsyncDir, isTempName, removeStaleTemps, tempPathFor, withPath } from "./atomic.js";
import { OptionError, type OptionName } from "./option-error.js";

/**
 * An output that cannot be written (or an input file that is not there), found before the work.
 * It names the option that gave the path: the library's name, or the CLI's flag.
 */
export class OutputPathError extends OptionError {
  override name = "OutputPathError";
}

/** A file or folder a command reads. */
export interface InputPath {
  /** The option that named it (`model`, or a flag such as `--model`), for the message. */
  flag: string;
  path: string | undefined;
}

/** A file or folder a command writes. */
export interface OutputPath {
  flag: string;
  path: string;
  kind: "file" | "folder";
  /**
   * For a folder that exists: why it may not be written (replaced, or written into), or null
   * when it may. `names` are its entries, temp files of earlier writers left out. Default: any.
   */
  reuse?: (names: string[]) => string | null;
  /** A folder written into where it is (a run folder), not built beside it and renamed. */
  inPlace?: boolean;
}

/** File system types (statfs magic) that hold no files: writing there hangs or means something else. */
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x1cd1: "devpts",
  0x27e0eb: "cgroup",
  0x63677270: "cgroup2",
  0x64626720: "debugfs",
  0x73636673: "securityfs",
  0x74726163: "tracefs",
  0x62656570: "configfs",
  0x6165676c: "pstore",
  0xcafe4a11: "bpf",
  0x42494e4d: "binfmt_misc",
};

/** Linux's pseudo file system mount points (devtmpfs reports tmpfs's magic, so /dev goes by name). */
const PSEUDO_ROOTS = process.platform === "linux" ? ["/proc", "/sys", "/dev"] : [];
const PSEUDO_EXCEPTIONS = ["/dev/shm"];

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

/** `a` equals `b` or lies inside it. */
export function isWithin(a: string, b: string): boolean {
  const rel = relative(b, a);
  return rel === "" || (!isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

/** The deepest existing path at or above `abs`, and whether it is a folder. */
function nearestExisting(abs: string): { path: string; isDir: boolean } {
  for (let p = abs; ; p = dirname(p)) {
    try {
      return { path: p, isDir: statSync(p).isDirectory() };
    } catch (err) {
      if (code(err) !== "ENOENT" && code(err) !== "ENOTDIR") throw withPath(err, p);
    }
    if (dirname(p) === p) return { path: p, isDir: true };
  }
}

/** `path` made absolute with its existing part's symlinks resolved, so two names of one place compare equal. */
export function canonicalPath(path: string): string {
  const abs = resolve(path);
  const { path: existing } = nearestExisting(abs);
  let real = existing;
  try {
    real = realpathSync(existing);
  } catch {
    // unreadable: compare as given
  }
  return join(real, relative(existing, abs));
}

/** The pseudo file system `abs` would be written to, or null. */
function pseudoFileSystem(abs: string, existing: string): string | null {
  for (const root of PSEUDO_ROOTS)
    if (isWithin(abs, root) && !PSEUDO_EXCEPTIONS.some((e) => isWithin(abs, e))) return `${root} is a pseudo file system`;
  try {
    const type = PSEUDO_FS[statfsSync(existing).type];
    if (type) return `${existing} is on a pseudo file system (${type})`;
  } catch {
    // statfs unsupported here: the write itself will say
  }
  return null;
}

/** Why `dir` cannot be written in, or null. */
function notWritable(dir: string): string | null {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    return null;
  } catch (err) {
    const c = code(err);
    return c === "EROFS" ? `${dir} is on a read-only file system` : c === "EACCES" || c === "EPERM" ? `no permission to write in ${dir}` : `cannot write in ${dir} (${c})`;
  }
}

function checkOne(out: OutputPath, inputs: InputPath[]): void {
  const fail = (why: string | ((n: OptionName) => string)): never => {
    throw new OutputPathError((n) => `${n(out.flag)} ${out.path}: ${typeof why === "string" ? why : why(n)}`);
  };
  if (out.path.trim() === "") throw new OutputPathError((n) => `${n(out.flag)} is empty: give a ${out.kind === "file" ? "file" : "folder"} path`);
  const abs = resolve(out.path);
  const existing = nearestExisting(abs);
  const pseudo = pseudoFileSystem(abs, existing.path);
  if (pseudo) fail(`${pseudo}, not a place for files; choose a ${out.kind} on disk`);
  const what = out.kind === "file" ? "a file" : "a folder";
  if (existing.path === abs) {
    if (out.kind === "folder" && !existing.isDir) fail((n) => `it is a file, but ${n(out.flag)} takes a folder; choose another path`);
    if (out.kind === "file" && existing.isDir) fail((n) => `it is a folder, but ${n(out.flag)} takes a file path; give a file name in it`);
  } else if (!existing.isDir) {
    fail(`${existing.path} is a file, so ${what} cannot be made under it`);
  }
  // Outputs are built beside their target and renamed into place, so the target's folder must be
  // writable; a folder written where it is (a run folder) must be writable itself.
  const exists = existing.path === abs;
  const blocked = out.inPlace && exists ? notWritable(abs) : notWritable(exists ? dirname(abs) : existing.path);
  if (blocked) fail(blocked);
  const target = canonicalPath(abs);
  for (const input of inputs) {
    if (!input.path) continue;
    const source = canonicalPath(input.path);
    if (target === source) fail((n) => `it is the ${n(input.flag)} ${inputKind(source)}; write elsewhere (inputs are never overwritten)`);
    if (isWithin(target, source)) fail((n) => `it is inside the ${n(input.flag)} folder ${input.path}; write elsewhere (inputs are never overwritten)`);
    if (isWithin(source, target)) fail((n) => `it holds the ${n(input.flag)} ${inputKind(source)} ${input.path}, which writing there would replace; write elsewhere`);
  }
  if (existing.path === abs && existing.isDir && out.reuse) {
    let names: string[];
    try {
      names = readdirSync(abs).filter((n) => !isTempName(n));
    } catch (err) {
      return fail(`cannot list its files (${code(err) ?? String(err)})`);
    }
    const why = out.reuse(names);
    if (why) fail(why);
  }
}

const inputKind = (path: string): string => {
  try {
    return statSync(path).isDirectory() ? "folder" : "file";
  } catch {
    return "path";
  }
};

/**
 * Refuses, in one line naming the flag and path, an output that cannot be written or would
 * overwrite an input. Creates nothing; run it before loading models or computing.
 */
export function checkOutputs(outputs: OutputPath[], inputs: InputPath[] = []): void {
  for (const out of outputs) checkOne(out, inputs);
  for (const [i, a] of outputs.entries())
    for (const b of outputs.slice(i + 1)) {
      const [ca, cb] = [canonicalPath(a.path), canonicalPath(b.path)];
      if (isWithin(ca, cb) || isWithin(cb, ca)) throw new OutputPathError((n) => `${n(a.flag)} ${a.path} and ${n(b.flag)} ${b.path} overlap; give them separate places`);
    }
}

/** Refuses, naming the flag, an input file that is missing or is a folder (before any work, like the outputs). */
export function checkInputFiles(inputs: InputPath[]): void {
  for (const { flag, path } of inputs) {
    if (path === undefined) continue;
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (err) {
      throw new OutputPathError((n) => `${n(flag)} ${path}: ${code(err) === "ENOENT" ? "no such file" : `cannot read it (${code(err) ?? String(err)})`}`);
    }
    if (isDir) throw new OutputPathError((n) => `${n(flag)} ${path}: it is a folder; ${n(flag)} takes a file`);
  }
}

/** A reuse rule: an existing folder may be replaced when it is empty or holds only what `owns` accepts. */
export function onlyHolds(what: string, owns: (name: string) => boolean): (names: string[]) => string | null {
  return (names) => {
    const other = names.filter((n) => !owns(n));
    if (other.length === 0) return null;
    const shown = other.slice(0, 3).join(", ") + (other.length > 3 ? `, ... (${other.length} in all)` : "");
    return `it holds ${shown}, which are not ${what}; choose a new or empty folder (it is replaced as a whole)`;
  };
}

/**
 * Makes `dir` and its missing parents one level at a time (a recursive mkdir loops forever on
 * some pseudo file systems) and returns the folders it made, outermost first.
 */
export function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    let isDir: boolean | null = null;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      if (code(err) !== "ENOENT" && code(err) !== "ENOTDIR") throw withPath(err, p);
    }
    if (isDir === false) throw new FileWriteError(p, "ENOTDIR", `it is a file, so ${dir} cannot be made`);
    if (isDir) break;
    missing.push(p);
    if (dirname(p) === p) break;
  }
  const created: string[] = [];
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
      created.push(d);
    } catch (err) {
      if (code(err) === "EEXIST" && statSync(d).isDirectory()) continue; // made meanwhile by someone else
      removeEmptyDirs(created);
      throw withPath(err, d);
    }
  }
  return created;
}

/** Removes folders `makeDirs` made, innermost first, where they are still empty. */
export function removeEmptyDirs(created: string[]): void {
  for (const d of [...created].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // something else is in it now: leave it
    }
  }
}

/**
 * Writes the folder `target` whole: `write` fills a temp folder beside it, which is renamed into
 * place (an old `target` is swapped out and removed only then). A failure removes the temp folder
 * and any parents made for it, and leaves an old `target` as it was; a kill leaves only a temp
 * folder, which the next writer there removes.
 */
export function writeFolderAtomic<T>(target: string, write: (dir: string) => T): T {
  const abs = resolve(target);
  const parent = dirname(abs);
  const created = makeDirs(parent);
  removeStaleTemps(parent);
  const tmp = tempPathFor(abs);
  let result: T;
  try {
    try {
      mkdirSync(tmp);
    } catch (err) {
      throw withPath(err, abs);
    }
    result = write(tmp);
    fsyncDir(tmp);
    replaceFolder(tmp, abs);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    removeEmptyDirs(created);
    throw err;
  }
  fsyncDir(parent);
  return result;
}

function replaceFolder(tmp: string, target: string): void {
  try {
    if (!existsSync(target)) return renameSync(tmp, target);
    const old = tempPathFor(target);
    renameSync(target, old);
    try {
      renameSync(tmp, target);
    } catch (err) {
      renameSync(old, target);
      throw err;
    }
    rmSync(old, { recursive: true, force: true });
  } catch (err) {
    throw withPath(err, target);
  }
}

/**
 * Writes one file with `write` (an atomic writer), making its missing parent folders first and
 * removing them again when the write fails.
 */
export function writeFileMakingDirs<T>(path: string, write: (path: string) => T): T {
  const created = makeDirs(dirname(resolve(path)));
  try {
    return write(path);
  } catch (err) {
    removeEmptyDirs(created);
    throw err;
  }
}
