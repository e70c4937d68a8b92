// Fuzzing the safetensors reader: bench/fuzz.js's seeded mutants (byte-level and structural:
// duplicate keys, missing fields, wrong dtypes, non-object entries, __metadata__ of wrong types,
// deep nesting, ...) must each parse to something self-consistent or be refused with a
// SafetensorsError, never crash, hang, or throw anything else. The fuzzer runs as a child process
// (and its loop in a child of that), so a native abort fails this test instead of the runner.
// DIFFPRUNE_FUZZ_ITERATIONS sets the number of cases (default 20000; `npm run fuzz` runs 100000).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/fixtures.js";

const fuzzer = join(repoRoot(), "dist", "bench", "fuzz.js");
const ITERATIONS = Number(process.env.DIFFPRUNE_FUZZ_ITERATIONS ?? 20_000);
const SEED = 20240611;
const env = { ...process.env, DIFFPRUNE_NUM_THREADS: "1" };

interface Summary {
  iterations: number;
  parsed: number;
  rejected: number;
  kinds: Record<string, { cases: number; parsed: number; rejected: number; failed: number }>;
  failed: number;
  slowest: { case: number; kind: string; ms: number };
  seconds: number;
}

// ~0.2 ms a case on an idle machine; the limit leaves room for a loaded one.
const limitMs = 60_000 + ITERATIONS * 3;

test(`${ITERATIONS} mutated files parse consistently or throw SafetensorsError`, { timeout: limitMs + 10_000 }, (t) => {
  assert.ok(Number.isSafeInteger(ITERATIONS) && ITERATIONS > 0, `DIFFPRUNE_FUZZ_ITERATIONS must be a positive integer, not ${process.env.DIFFPRUNE_FUZZ_ITERATIONS}`);
  const r = spawnSync(process.execPath, [fuzzer, "--iterations", String(ITERATIONS), "--seed", String(SEED), "--timeout", String(Math.ceil(limitMs / 1000))], { encoding: "utf8", env, timeout: limitMs + 5_000 });
  assert.equal(r.signal, null, `the fuzzer was killed by ${r.signal}\n${r.stderr}`);
  assert.equal(r.status, 0, `the fuzzer failed:\n${r.stderr}`);
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!) as Summary;
  assert.equal(s.iterations, ITERATIONS);
  assert.equal(s.parsed + s.rejected, ITERATIONS);
  t.diagnostic(`${s.parsed} parsed, ${s.rejected} rejected in ${s.seconds} s; slowest case ${s.slowest.case} (${s.slowest.kind}) ${s.slowest.ms} ms`);
  t.diagnostic(Object.entries(s.kinds).map(([k, c]) => `${k} ${c.cases} (${c.parsed} parsed)`).join(", "));
  // Both outcomes must be common, and every mutation must have run, or the fuzzer tests little.
  assert.ok(s.parsed > ITERATIONS * 0.1, `only ${s.parsed} mutants parsed`);
  assert.ok(s.rejected > ITERATIONS * 0.4, `only ${s.rejected} mutants rejected`);
  if (ITERATIONS >= 10_000) for (const [kind, c] of Object.entries(s.kinds)) assert.ok(c.cases > 0, `no ${kind} mutant`);
});

test("a fuzzer worker that aborts fails the run and names the case to reproduce", () => {
  const r = spawnSync(process.execPath, [fuzzer, "--iterations", "20", "--seed", String(SEED), "--abort-at", "7"], { encoding: "utf8", env, timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /the worker died \(SIGABRT\) during case 7 of 20 \(seed 20240611\); reproduce it with: node dist\/bench\/fuzz\.js --seed 20240611 --case 7/);
});
