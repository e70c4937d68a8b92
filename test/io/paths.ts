// Where the io tests find the shared reference fixtures and put scratch files.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above this file with a package.json (src or dist). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("test/io: no package.json above this file");
    dir = up;
  }
  return dir;
}

/** A file under the shared fixtures folder, which sits beside the repository. */
export const fixture = (...parts: string[]): string => resolve(repoRoot(), "..", "shared", "fixtures", ...parts);

export const scratchDir = (): string => mkdtempSync(join(tmpdir(), "diffprune-io-"));
