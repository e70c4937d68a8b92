// The run report: one self-contained HTML page (inline CSS, inline SVG charts, sample grids as PNG
// data URIs, no scripts), so report.html opens offline, can be archived or mailed as one file, and
// a Content-Security-Policy forbids it to load anything else.
import type { GradientReport } from "../pruning/index.js";
import { lineChart } from "./svg.js";

/** One method's results: a row of the results table (the paper's Table 1). */
export interface ReportRow {
  /** "pretrained", "diff-pruning", "taylor", "magnitude", "random", "scratch", ... */
  name: string;
  /** Parameter count. */
  params: number;
  /** Multiply-accumulates per UNet evaluation at batch 1. */
  macs: number | null;
  fid: number | null;
  /** The FID feature extractor, e.g. "fmnist-classifier". */
  fidExtractor?: string;
  /** SSIM against the pretrained model's samples from the same noise. */
  ssim: number | null;
  /** Its 95% interval (bootstrap over the images). */
  ssimCi95?: [number, number] | null;
  finetuneSteps: number | null;
  /** Milliseconds per UNet evaluation (batch 1). */
  latencyMs: number | null;
  /** Pretrained latency / this latency. */
  speedup: number | null;
  /** A PNG file's bytes (a sample grid), shown side by side with the other rows'. */
  samples: Uint8Array | null;
  /** Fine-tuning loss by step: [step, loss] pairs. */
  lossCurve?: [number, number][];
}

export interface ReportInput {
  title: string;
  /** A line under the title: dataset, ratio, the command that produced the run. */
  subtitle?: string;
  rows: ReportRow[];
  /** Diff-Pruning's gradient loop: the loss per timestep t = 0, 1, ..., the threshold, the T' reached. */
  diffPruning?: GradientReport | null;
  /** Output channels per layer, before pruning and after each method (keyed by method name). */
  layers?: { name: string; before: number; after: Record<string, number> }[] | null;
  /** Free text lines (machine, command). */
  notes?: string[];
  /** Further sections (their HTML made by the caller, text escaped with escapeHtml), before the notes. */
  sections?: ReportSection[];
}

export interface ReportSection {
  id: string;
  heading: string;
  html: string;
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
/** Escapes text for element content and for double-quoted attribute values. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
const esc = escapeHtml;

const DASH = "\u2013";

/** The page may show its own inline styles and data: images, and nothing else. */
const CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0; }
.subtitle { color: #555; margin: .25rem 0 0; }
h2 { font-size: 1.1rem; margin: 2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .7rem; text-align: right; border-bottom: 1px solid #eee; }
td, th[scope=row] { white-space: nowrap; }
.scroll { overflow-x: auto; }
th[scope=row], thead th:first-child { text-align: left; }
thead th { border-bottom: 2px solid #999; vertical-align: bottom; }
small { color: #777; font-weight: normal; }
.layers { font-size: 12px; }
.layers td.pruned { background: #fbf1e4; }
.grids { display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: flex-start; }
figure { margin: 0; }
figcaption { text-align: center; color: #444; margin-top: .3rem; }
img { display: block; image-rendering: pixelated; }
svg { max-width: 100%; height: auto; }
.notes { color: #555; font-family: ui-monospace, monospace; font-size: 12px; }
`;

// ---- the results table ----

/** A table column: the row field it shows (also its data-key), its heading, how a number prints. */
interface Column {
  key: "params" | "macs" | "fid" | "ssim" | "finetuneSteps" | "latencyMs" | "speedup";
  heading: string;
  format: (v: number) => string;
}

/** MACs in one unit for the whole column, the largest that keeps the biggest value >= 1. */
function macsColumn(rows: ReportRow[]): Column {
  const max = Math.max(0, ...rows.map((r) => r.macs ?? 0));
  const [div, unit] = max >= 1e9 ? [1e9, "G"] : max >= 1e6 ? [1e6, "M"] : max >= 1e3 ? [1e3, "K"] : [1, ""];
  return { key: "macs", heading: `MACs${unit ? ` (${unit})` : ""}`, format: (v) => (v / div).toFixed(div === 1 ? 0 : 2) };
}

function resultsTable(rows: ReportRow[]): string {
  // One extractor for the whole column goes into its heading; several are named in each cell.
  const extractors = new Set(rows.filter((r) => r.fid !== null && r.fidExtractor).map((r) => r.fidExtractor!));
  const fidHeading = extractors.size === 1 ? `FID<br><small>${esc([...extractors][0]!)}</small>` : "FID";
  const columns: Column[] = [
    { key: "params", heading: "#Params (M)", format: (v) => (v / 1e6).toFixed(3) },
    macsColumn(rows),
    { key: "fid", heading: fidHeading, format: (v) => v.toFixed(2) },
    { key: "ssim", heading: rows.some((r) => r.ssimCi95) ? "SSIM<br><small>[95% CI]</small>" : "SSIM", format: (v) => v.toFixed(4) },
    { key: "finetuneSteps", heading: "Fine-tune steps", format: (v) => String(v) },
    { key: "latencyMs", heading: "Latency (ms)", format: (v) => v.toFixed(2) },
    { key: "speedup", heading: "Speed-up", format: (v) => `${v.toFixed(2)}\u00d7` },
  ];
  const cell = (row: ReportRow, c: Column): string => {
    const v = row[c.key];
    if (v === null) return `<td data-key="${c.key}">${DASH}</td>`;
    const ci = c.key === "ssim" && row.ssimCi95 ? ` <small>[${row.ssimCi95.map((x) => x.toFixed(3)).join(", ")}]</small>` : "";
    const ext = (c.key === "fid" && extractors.size > 1 && row.fidExtractor ? ` <small>${esc(row.fidExtractor)}</small>` : "") + ci;
    return `<td data-key="${c.key}" data-value="${v}">${esc(c.format(v))}${ext}</td>`;
  };
  const head = `<tr><th>Method</th>${columns.map((c) => `<th>${c.heading}</th>`).join("")}</tr>`;
  const body = rows.map((r) => `<tr data-method="${esc(r.name)}"><th scope="row">${esc(r.name)}</th>${columns.map((c) => cell(r, c)).join("")}</tr>`);
  return `<div class="scroll"><table class="results"><thead>${head}</thead><tbody>\n${body.join("\n")}\n</tbody></table></div>`;
}

// ---- sample grids ----

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A PNG's size from its IHDR chunk, which the format puts first. */
function pngSize(bytes: Uint8Array, what: string): { width: number; height: number } {
  if (bytes.length < 24 || !PNG_MAGIC.every((b, i) => bytes[i] === b))
    throw new TypeError(`renderReport: ${what} is not a PNG file (samples must be the bytes of a .png, as encodePng writes them)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** A sample grid (a PNG's bytes) as a figure with its caption, enlarged by a whole factor. */
export function sampleFigure(row: Pick<ReportRow, "name"> & { samples: Uint8Array }): string {
  const { width, height } = pngSize(row.samples, `the samples of "${row.name}"`);
  // Small grids (28 px Fashion-MNIST) are enlarged by a whole factor so pixels stay crisp.
  const k = Math.max(1, Math.floor(320 / Math.max(width, height)));
  const src = `data:image/png;base64,${Buffer.from(row.samples.buffer, row.samples.byteOffset, row.samples.byteLength).toString("base64")}`;
  const name = esc(row.name);
  return `<figure data-method="${name}"><img src="${src}" width="${width * k}" height="${height * k}" alt="samples of ${name}"><figcaption>${name}</figcaption></figure>`;
}

// ---- charts and the layer table ----

function diffPruningChart({ losses, thr, tPrime }: GradientReport): string {
  const maxLoss = Math.max(...losses.filter(Number.isFinite));
  // Taylor's loop (thr null) runs every timestep: no threshold to draw.
  const threshold = thr === null ? null : thr * maxLoss;
  const chart = lineChart([{ name: "loss", points: losses.map((l, t): [number, number] => [t, l]) }], {
    title: "Diff-Pruning: denoising loss by timestep",
    xLabel: "timestep t",
    yLabel: "loss",
    logY: true,
    hLines: threshold === null ? [] : [{ y: threshold, label: `thr \u00d7 max = ${threshold.toPrecision(3)}` }],
    vLines: [{ x: tPrime, label: `T' = ${tPrime}` }],
  });
  const reached = `Gradients accumulated over timesteps 0\u2026<strong data-key="tPrime" data-value="${tPrime}">T' = ${tPrime}</strong>`;
  const text =
    threshold === null
      ? `${reached}, every timestep.`
      : `${reached}, the first t whose loss fell below thr \u00d7 max loss = ${thr} \u00d7 ${maxLoss.toPrecision(4)} = ${threshold.toPrecision(3)}.`;
  return `<p>${text}</p>\n${chart}`;
}

function layerTable(layers: NonNullable<ReportInput["layers"]>): string {
  const methods = [...new Set(layers.flatMap((l) => Object.keys(l.after)))];
  const head = `<tr><th>Layer</th><th>Before</th>${methods.map((m) => `<th>${esc(m)}</th>`).join("")}</tr>`;
  const body = layers.map((l) => {
    const cells = methods.map((m) => {
      const n = l.after[m];
      if (n === undefined) return `<td data-key="${esc(m)}">${DASH}</td>`;
      const kept = l.before > 0 ? ` title="${((100 * n) / l.before).toFixed(0)}% kept"` : "";
      return `<td data-key="${esc(m)}" data-value="${n}"${n < l.before ? ` class="pruned"` : ""}${kept}>${n}</td>`;
    });
    return `<tr data-layer="${esc(l.name)}"><th scope="row">${esc(l.name)}</th><td data-key="before" data-value="${l.before}">${l.before}</td>${cells.join("")}</tr>`;
  });
  return `<div class="scroll"><table class="layers"><thead>${head}</thead><tbody>\n${body.join("\n")}\n</tbody></table></div>`;
}

const section = (id: string, heading: string, content: string): string => `<section id="${id}">\n<h2>${heading}</h2>\n${content}\n</section>`;

/**
 * The report page as one HTML string. Sections whose data is absent (no rows, no samples, no
 * Diff-Pruning losses, no loss curves, no layers, no notes) are left out. Every table cell carries
 * its raw number in `data-value` (absent for a missing value) under the row's `data-key`.
 */
export function renderReport(input: ReportInput): string {
  const { title, subtitle, rows, diffPruning, layers, notes, sections: extra = [] } = input;
  const sections: string[] = [];
  if (rows.length > 0) sections.push(section("results", "Results", resultsTable(rows)));
  const withSamples = rows.filter((r): r is ReportRow & { samples: Uint8Array } => r.samples !== null);
  if (withSamples.length > 0) sections.push(section("samples", "Samples", `<div class="grids">\n${withSamples.map(sampleFigure).join("\n")}\n</div>`));
  if (diffPruning && diffPruning.losses.some(Number.isFinite)) sections.push(section("diff-pruning", "Diff-Pruning timesteps", diffPruningChart(diffPruning)));
  const curves = rows.filter((r) => r.lossCurve && r.lossCurve.length > 0).map((r) => ({ name: r.name, points: r.lossCurve! }));
  if (curves.length > 0)
    sections.push(section("finetune", "Fine-tuning loss", lineChart(curves, { title: "Fine-tuning loss", xLabel: "step", yLabel: "loss", logY: true })));
  if (layers && layers.length > 0) sections.push(section("layers", "Channels per layer", layerTable(layers)));
  for (const s of extra) sections.push(section(s.id, esc(s.heading), s.html));
  if (notes && notes.length > 0) sections.push(section("notes", "Run", `<ul class="notes">${notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>`));
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    "</head>",
    "<body>",
    "<header>",
    `<h1>${esc(title)}</h1>`,
    ...(subtitle ? [`<p class="subtitle">${esc(subtitle)}</p>`] : []),
    "</header>",
    ...sections,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
