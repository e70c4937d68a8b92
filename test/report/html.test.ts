// The report page: headless Chromium renders it without console errors, loads every sample grid
// and no outside resource, and its table carries exactly the metrics it was given; hostile text is
// escaped, absent data leaves its section out, and the Diff-Pruning chart marks T'.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import * as torch from "../../src/torch/index.js";
import { encodePng, makeGrid } from "../../src/io/index.js";
import { renderReport, type ReportInput, type ReportRow } from "../../src/report/index.js";
import { scratchDir } from "../helpers/fixtures.js";

const dir = scratchDir();
after(() => rmSync(dir, { recursive: true, force: true }));

/** A PNG sample grid of n random 28x28 images, as a run writes it. */
function grid(seed: number, n: number, channels: 1 | 3): Uint8Array {
  torch.manualSeed(seed);
  const images = torch.tidy(() => torch.rand([n, channels, 28, 28]).mul(2).sub(1));
  try {
    return encodePng(makeGrid(images));
  } finally {
    images.dispose();
  }
}

const curve = (start: number, steps: number): [number, number][] =>
  Array.from({ length: steps / 50 }, (_, i) => [i * 50, start * Math.exp(-i / 8) + 0.03 + 0.004 * Math.sin(i)]);

const row = (name: string, r: Partial<ReportRow>): ReportRow => ({
  name,
  params: 35_746_307,
  macs: 6_063_932_416,
  fid: null,
  ssim: null,
  finetuneSteps: null,
  latencyMs: null,
  speedup: null,
  samples: null,
  ...r,
});

/** A report as the pruning command writes it: six methods, CIFAR-10 sized figures. */
function realistic(): ReportInput {
  const pruned = { params: 19_839_723, macs: 3_395_104_768, finetuneSteps: 100_000, fidExtractor: "fmnist-classifier" };
  return {
    title: "Diff-Pruning, ratio 0.3",
    subtitle: "google/ddpm-cifar10-32 \u2192 30% channels pruned, 100k fine-tuning steps",
    rows: [
      row("pretrained", { fid: 4.1943, fidExtractor: "fmnist-classifier", ssim: 1, latencyMs: 11.734, speedup: 1, samples: grid(1, 16, 3) }),
      row("diff-pruning", { ...pruned, fid: 5.2934, ssim: 0.93214, latencyMs: 6.9021, speedup: 1.70007, samples: grid(2, 16, 3), lossCurve: curve(0.2, 2000) }),
      row("taylor", { ...pruned, fid: 5.5611, ssim: 0.90012, latencyMs: 6.91, speedup: 1.69813, samples: grid(3, 16, 3), lossCurve: curve(0.25, 2000) }),
      row("magnitude", { ...pruned, fid: 5.4811, ssim: 0.91158, latencyMs: 6.8877, speedup: 1.70362, samples: grid(4, 16, 3), lossCurve: curve(0.3, 2000) }),
      row("random", { ...pruned, fid: 6.3678, ssim: 0.89453, latencyMs: 6.95, speedup: 1.68835, samples: grid(5, 9, 3), lossCurve: curve(0.35, 2000) }),
      row("scratch", { ...pruned, fid: 9.8712, finetuneSteps: 2_000, latencyMs: 6.9, speedup: 1.7006 }),
    ],
    diffPruning: { losses: Array.from({ length: 38 }, (_, t) => 0.9 * Math.exp(-t / 9) + 0.01), thr: 0.05, tPrime: 37, timesteps: 1000 },
    layers: [
      { name: "conv_in", before: 128, after: { "diff-pruning": 96, taylor: 96, magnitude: 96, random: 96 } },
      { name: "down_blocks.0.resnets.0.conv1", before: 128, after: { "diff-pruning": 96, taylor: 96, magnitude: 96, random: 96 } },
      { name: "mid_block.attentions.0.to_q", before: 256, after: { "diff-pruning": 179, taylor: 179, magnitude: 179, random: 179 } },
      { name: "conv_out", before: 3, after: { "diff-pruning": 3, taylor: 3, magnitude: 3, random: 3 } },
    ],
    notes: ["machine: 16 cores, libtorch 1.13 (CPU)", "command: diffprune prune --ratio 0.3 --method all"],
  };
}

/** The table as printed: [#params, MACs, FID, SSIM, fine-tune steps, latency, speed-up] per method. */
const PRINTED: Record<string, string[]> = {
  pretrained: ["35.746", "6.06", "4.19", "1.0000", "\u2013", "11.73", "1.00\u00d7"],
  "diff-pruning": ["19.840", "3.40", "5.29", "0.9321", "100000", "6.90", "1.70\u00d7"],
  taylor: ["19.840", "3.40", "5.56", "0.9001", "100000", "6.91", "1.70\u00d7"],
  magnitude: ["19.840", "3.40", "5.48", "0.9116", "100000", "6.89", "1.70\u00d7"],
  random: ["19.840", "3.40", "6.37", "0.8945", "100000", "6.95", "1.69\u00d7"],
  scratch: ["19.840", "3.40", "9.87", "\u2013", "2000", "6.90", "1.70\u00d7"],
};
const KEYS = ["params", "macs", "fid", "ssim", "finetuneSteps", "latencyMs", "speedup"] as const;

const sectionIds = (html: string): string[] => [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]!);

describe("renderReport", () => {
  test("hostile text is escaped everywhere it appears", () => {
    const evil = '<script>alert("x")</script>';
    const html = renderReport({
      title: `${evil} & co`,
      subtitle: evil,
      rows: [row(evil, { fid: 3, fidExtractor: evil, samples: grid(6, 1, 1), lossCurve: [[0, 1], [1, 0.5]] })],
      layers: [{ name: evil, before: 4, after: { [evil]: 2 } }],
      notes: [evil],
    });
    assert.ok(!/<script/i.test(html), "no script element");
    assert.ok(html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"));
    assert.ok(html.includes(`data-method="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"`), "attributes too");
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">/);
  });

  test("sections without data are left out; missing values print as an en dash without data-value", () => {
    const bare = renderReport({ title: "t", rows: [row("pretrained", { fid: 4.5 })], diffPruning: null, layers: null, notes: [] });
    assert.deepEqual(sectionIds(bare), ["results"]);
    assert.ok(!bare.includes("<svg") && !bare.includes("<img"));
    assert.ok(bare.includes('<td data-key="ssim">\u2013</td>'));
    assert.ok(bare.includes('<td data-key="fid" data-value="4.5">4.50</td>'));
    assert.deepEqual(sectionIds(renderReport({ title: "t", rows: [] })), []);
    assert.deepEqual(sectionIds(renderReport(realistic())), ["results", "samples", "diff-pruning", "finetune", "layers", "notes"]);
  });

  test("the Diff-Pruning chart draws the threshold and marks T'", () => {
    const losses = [1, 0.5, 0.2, 0.08, 0.04];
    const html = renderReport({ title: "t", rows: [], diffPruning: { losses, thr: 0.05, tPrime: 4, timesteps: 1000 } });
    assert.deepEqual(sectionIds(html), ["diff-pruning"]);
    assert.ok(html.includes(`text-anchor="end">T' = 4</text>`), "T' labels the vertical line, on its left where there is room");
    assert.ok(html.includes(">thr \u00d7 max = 0.0500</text>"), "threshold = thr * max(loss)");
    assert.equal((html.match(/stroke-dasharray/g) ?? []).length, 2);
    assert.ok(html.includes('data-key="tPrime" data-value="4"'));
  });

  test("MACs print in one unit per column; a sample that is not a PNG is refused", () => {
    const small = renderReport({ title: "t", rows: [row("a", { params: 1_234_567, macs: 523_000_000 }), row("b", { macs: 61_000_000 })] });
    assert.ok(small.includes("MACs (M)") && small.includes(">523.00<") && small.includes(">61.00<") && small.includes(">1.235<"));
    assert.throws(() => renderReport({ title: "t", rows: [row("a", { samples: new Uint8Array([1, 2, 3]) })] }), /the samples of "a" is not a PNG file/);
  });
});

// ---- headless Chromium ----

function chromium(): string {
  for (const name of ["chromium", "chromium-browser", "google-chrome"])
    for (const d of (process.env.PATH ?? "").split(delimiter)) if (d && existsSync(join(d, name))) return join(d, name);
  assert.fail("headless Chromium is not installed (no chromium on PATH): run scripts/setup.sh, which installs the Debian package chromium");
}

// Runs on the load event (after every image has loaded or failed) and writes what the page shows
// into the DOM, which --dump-dom then prints.
const CHECKER = `addEventListener("load", () => {
  const rows = {};
  for (const tr of document.querySelectorAll("table.results tbody tr")) {
    const cells = {};
    for (const td of tr.querySelectorAll("td")) cells[td.dataset.key] = { value: td.dataset.value ?? null, text: td.textContent };
    rows[tr.dataset.method] = cells;
  }
  const check = {
    rows,
    images: [...document.images].map((i) => ({ alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight })),
    captions: [...document.querySelectorAll("figcaption")].map((f) => f.textContent),
    charts: document.querySelectorAll("svg polyline").length,
    resources: performance.getEntriesByType("resource").map((e) => e.name),
  };
  document.body.setAttribute("data-check", encodeURIComponent(JSON.stringify(check)));
});`;

interface Check {
  rows: Record<string, Record<string, { value: string | null; text: string }>>;
  images: { alt: string; complete: boolean; width: number; height: number }[];
  captions: string[];
  charts: number;
  resources: string[];
}

test("headless Chromium renders the report: no console messages, every grid loads, the table holds the metrics", async () => {
  const input = realistic();
  const html = renderReport(input);
  // The page's policy forbids scripts; allow exactly the checker, by its hash.
  const hash = createHash("sha256").update(CHECKER).digest("base64");
  const checked = html.replace("default-src 'none'", `default-src 'none'; script-src 'sha256-${hash}'`).replace("</body>", `<script>${CHECKER}</script>\n</body>`);
  assert.notEqual(checked, html);
  const page = join(dir, "report.html");
  writeFileSync(page, checked);
  const home = join(dir, "home");
  const args = [
    "--headless",
    "--no-sandbox", // required as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    `--user-data-dir=${join(dir, "profile")}`,
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
    "--dump-dom",
    `file://${page}`,
  ];
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home };
  const { stdout, stderr } = await promisify(execFile)(chromium(), args, { env, timeout: 20_000, maxBuffer: 64 << 20 });

  // Console messages (CSP violations, failed loads, errors) are logged as INFO:CONSOLE lines.
  const consoleLines = stderr.split("\n").filter((l) => /:CONSOLE[:(]/.test(l));
  assert.deepEqual(consoleLines, [], "the page logs nothing to the console");
  const found = /<body[^>]* data-check="([^"]*)"/.exec(stdout);
  assert.ok(found, `the checker did not run; chromium's stderr ends with:\n${stderr.slice(-2000)}`);
  const check = JSON.parse(decodeURIComponent(found[1]!)) as Check;

  assert.deepEqual(check.resources, [], "nothing is fetched");
  const withSamples = input.rows.filter((r) => r.samples !== null);
  assert.deepEqual(check.captions, withSamples.map((r) => r.name));
  assert.deepEqual(
    check.images.map((i) => [i.alt, i.complete, i.width, i.height]),
    // 16 images: 4 x 4 of 28 px with 2 px padding; 9 images: 3 x 3
    withSamples.map((r) => [`samples of ${r.name}`, true, r.name === "random" ? 92 : 122, r.name === "random" ? 92 : 122]),
  );
  assert.equal(check.charts, 1 + 4, "the Diff-Pruning curve and four fine-tuning curves");

  assert.deepEqual(Object.keys(check.rows), input.rows.map((r) => r.name));
  for (const r of input.rows) {
    const cells = check.rows[r.name]!;
    assert.deepEqual(
      KEYS.map((k) => cells[k]!.value),
      KEYS.map((k) => (r[k] === null ? null : String(r[k]))),
      `${r.name}: data-value is the raw number`,
    );
    assert.deepEqual(KEYS.map((k) => cells[k]!.text), PRINTED[r.name], `${r.name}: printed values`);
  }
});
