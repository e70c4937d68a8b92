// The reference fixtures (produced by diffusers, Torch-Pruning and pytorch_msssim; see
// test/fixtures/README.md) live in the repository, so a fresh clone runs every test.
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { packageRoot as repoRoot, writePng } from "../../src/io/index.js";

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

/** `count` 16x16 gray PNGs of fixed patterns in a new folder `dir`: a dataset that needs nothing installed. */
export function tinyImageFolder(dir: string, count = 8): string {
  mkdirSync(dir);
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(256);
    for (let p = 0; p < 256; p++) data[p] = (p * (i + 3) + 17 * i) % 256;
    writePng(join(dir, `${i}.png`), { width: 16, height: 16, channels: 1, data });
  }
  return dir;
}
