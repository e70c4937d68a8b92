// Self-contained SVG line charts (no scripts, no fonts to fetch), for loss curves and the like.

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
}

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Logarithmic y axis (losses). */
  logY?: boolean;
  width?: number;
  height?: number;
  /** Horizontal reference lines (a threshold). */
  hLines?: { y: number; label: string }[];
  /** Vertical reference lines (a cut-off step). */
  vLines?: { x: number; label: string }[];
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

const escape = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Round, readable tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

export function lineChart(series: Series[], options: ChartOptions = {}): string {
  const { title = "", xLabel = "", yLabel = "", logY = false, width = 640, height = 360, hLines = [], vLines = [] } = options;
  const m = { left: 64, right: 16, top: title ? 32 : 12, bottom: 44 };
  const fy = (y: number): number => (logY ? Math.log10(Math.max(y, 1e-30)) : y);
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0));
  const xs = [...all.map(([x]) => x), ...vLines.map((l) => l.x)];
  const ys = [...all.map(([, y]) => fy(y)), ...hLines.map((l) => fy(l.y))];
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const px = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => m.top + ph - ((fy(y) - y0) / (y1 - y0)) * ph;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  if (title) parts.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${escape(title)}</text>`);
  // axes and ticks
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (const t of ticks(x0, x1)) parts.push(`<line x1="${px(t)}" y1="${m.top + ph}" x2="${px(t)}" y2="${m.top + ph + 4}" stroke="#999"/><text x="${px(t)}" y="${m.top + ph + 16}" text-anchor="middle">${label(t)}</text>`);
  const yTicks = logY ? ticks(Math.floor(y0), Math.ceil(y1)).filter((t) => Number.isInteger(t)).map((t) => 10 ** t) : ticks(y0, y1);
  for (const t of yTicks) {
    const y = py(t);
    if (y < m.top - 0.5 || y > m.top + ph + 0.5) continue;
    parts.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#eee"/><text x="${m.left - 6}" y="${y + 4}" text-anchor="end">${label(t)}</text>`);
  }
  if (xLabel) parts.push(`<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle">${escape(xLabel)}</text>`);
  if (yLabel) parts.push(`<text transform="translate(14 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`);
  for (const l of hLines) parts.push(`<line x1="${m.left}" y1="${py(l.y)}" x2="${m.left + pw}" y2="${py(l.y)}" stroke="#555" stroke-dasharray="4 3"/><text x="${m.left + pw - 4}" y="${py(l.y) - 4}" text-anchor="end">${escape(l.label)}</text>`);
  for (const l of vLines) {
    // The label goes on the side with room: a cut-off at the last step would be clipped on the right.
    const [tx, anchor] = px(l.x) > m.left + pw / 2 ? [px(l.x) - 4, "end"] : [px(l.x) + 4, "start"];
    parts.push(`<line x1="${px(l.x)}" y1="${m.top}" x2="${px(l.x)}" y2="${m.top + ph}" stroke="#555" stroke-dasharray="4 3"/><text x="${tx}" y="${m.top + 12}" text-anchor="${anchor}">${escape(l.label)}</text>`);
  }
  // series and legend
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0));
    if (pts.length > 0) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ")}"/>`);
    if (series.length > 1) parts.push(`<rect x="${m.left + 8}" y="${m.top + 8 + i * 15}" width="10" height="3" fill="${color}"/><text x="${m.left + 22}" y="${m.top + 13 + i * 15}">${escape(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** One row of an interval chart: an estimate and its interval. */
export interface IntervalRow {
  name: string;
  estimate: number;
  ci: [number, number];
}

/**
 * Estimates with their intervals, one row each (a forest plot), and a dashed line at 0: a paired
 * difference whose interval misses the line is resolved.
 */
export function intervalChart(rows: IntervalRow[], options: Pick<ChartOptions, "title" | "xLabel" | "width"> = {}): string {
  const { title = "", xLabel = "", width = 640 } = options;
  const rowHeight = 26;
  const m = { left: 150, right: 24, top: title ? 32 : 12, bottom: 44 };
  const height = m.top + m.bottom + rowHeight * Math.max(1, rows.length);
  const xs = [0, ...rows.flatMap((r) => [r.estimate, ...r.ci])].filter(Number.isFinite);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  const pad = (x1 - x0) * 0.05;
  [x0, x1] = [x0 - pad, x1 + pad];
  const pw = width - m.left - m.right;
  const px = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  if (title) parts.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${escape(title)}</text>`);
  const bottom = height - m.bottom;
  parts.push(`<line x1="${m.left}" y1="${bottom}" x2="${m.left + pw}" y2="${bottom}" stroke="#999"/>`);
  for (const t of ticks(x0, x1)) parts.push(`<line x1="${px(t)}" y1="${bottom}" x2="${px(t)}" y2="${bottom + 4}" stroke="#999"/><text x="${px(t)}" y="${bottom + 16}" text-anchor="middle">${label(t)}</text>`);
  parts.push(`<line x1="${px(0)}" y1="${m.top}" x2="${px(0)}" y2="${bottom}" stroke="#555" stroke-dasharray="4 3"/>`);
  if (xLabel) parts.push(`<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle">${escape(xLabel)}</text>`);
  rows.forEach((r, i) => {
    const y = m.top + rowHeight * (i + 0.5);
    const color = r.ci[0] > 0 || r.ci[1] < 0 ? PALETTE[0]! : PALETTE[7]!;
    parts.push(
      `<text x="${m.left - 8}" y="${y + 4}" text-anchor="end">${escape(r.name)}</text>`,
      `<line x1="${px(r.ci[0])}" y1="${y}" x2="${px(r.ci[1])}" y2="${y}" stroke="${color}" stroke-width="2"/>`,
      `<circle cx="${px(r.estimate)}" cy="${y}" r="4" fill="${color}"/>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}
