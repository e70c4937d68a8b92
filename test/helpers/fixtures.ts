// The shared reference fixtures (produced by diffusers and pytorch_msssim) sit beside the
// repository, in ../shared/fixtures.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { packageRoot as repoRoot } from "../../src/io/index.js";

export { repoRoot };

/** The fixtures folder: $DIFFPRUNE_FIXTURES, or shared/fixtures beside the repository. */
function fixturesDir(): string {
  if (process.env.DIFFPRUNE_FIXTURES) return resolve(process.env.DIFFPRUNE_FIXTURES);
  const dir = resolve(repoRoot(), "..", "shared", "fixtures");
  if (!existsSync(dir)) throw new Error(`the reference fixtures are not at ${dir}: set DIFFPRUNE_FIXTURES to their folder`);
  return dir;
}

/** A file or folder under the fixtures folder. */
export const fixture = (...parts: string[]): string => resolve(fixturesDir(), ...parts);

/** A fresh scratch folder under the system temp dir. */
export const scratchDir = (prefix = "diffprune-test-"): string => mkdtempSync(join(tmpdir(), prefix));
