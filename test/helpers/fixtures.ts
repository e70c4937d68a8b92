// The reference fixtures (produced by diffusers, Torch-Pruning and pytorch_msssim; see
// test/fixtures/README.md) live in the repository, so a fresh clone runs every test.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { packageRoot as repoRoot } from "../../src/io/index.js";

export { repoRoot };

/** The fixtures folder: $DIFFPRUNE_FIXTURES (to test against another copy), or test/fixtures. */
function fixturesDir(): string {
  const dir = process.env.DIFFPRUNE_FIXTURES ? resolve(process.env.DIFFPRUNE_FIXTURES) : resolve(repoRoot(), "test", "fixtures");
  if (!existsSync(dir)) throw new Error(`the reference fixtures are not at ${dir}: set DIFFPRUNE_FIXTURES to their folder`);
  return dir;
}

/** A file or folder under the fixtures folder. */
export const fixture = (...parts: string[]): string => resolve(fixturesDir(), ...parts);

/** A fresh scratch folder under the system temp dir. */
export const scratchDir = (prefix = "diffprune-test-"): string => mkdtempSync(join(tmpdir(), prefix));
