// report.html of a study: the tables with their 95% intervals (before fine-tuning, after each
// budget, the paired differences), the paired-difference plots, the SSIM-vs-thr and SSIM-vs-ratio
// curves, the held-out loss by timestep band, and sample grids side by side. Built on
// report/html.ts's page (renderReport with sections) and report/svg.ts's charts.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io/index.js";
import { escapeHtml as esc, intervalChart, lineChart, renderReport, sampleFigure, type IntervalRow, type ReportSection } from "../report/index.js";
import { SCRATCH } from "./run-folder.js";
import { displayPath } from "./comparison-report.js";
import { readPruningRecord } from "./record.js";
import type { StudyOptions, StudyPaths } from "./study-folder.js";
import type { PerSeedInterval, SeedSummary, StudyResult } from "./study-summary.js";

const DASH = "\u2013";

/** How a column prints its numbers: fixed decimals, or significant digits (KID, whose scale follows the features). */
type Format = (v: number) => string;
const fixed = (digits: number, scale = 1): Format => (v) => (v * scale).toFixed(digits);
const significant: Format = (v) => v.toPrecision(3);

/** A table cell with its number in data-value (as html.ts's cells), mean and interval shown. */
function cell(key: string, s: SeedSummary | null | undefined, f: Format): string {
  if (!s) return `<td data-key="${esc(key)}">${DASH}</td>`;
  const ci = s.values.length > 1 ? ` <small>[${f(s.ci95[0])}, ${f(s.ci95[1])}]</small>` : "";
  return `<td data-key="${esc(key)}" data-value="${s.mean}" title="seeds ${s.seeds.join(", ")}">${f(s.mean)}${ci}</td>`;
}

const plain = (key: string, v: number | null | undefined, f: Format): string =>
  v === null || v === undefined ? `<td data-key="${esc(key)}">${DASH}</td>` : `<td data-key="${esc(key)}" data-value="${v}">${f(v)}</td>`;

function table(id: string, headings: string[], rows: { name: string; cells: string[] }[]): string {
  const head = `<tr>${headings.map((h) => `<th>${h}</th>`).join("")}</tr>`;
  const body = rows.map((r) => `<tr data-method="${esc(r.name)}"><th scope="row">${esc(r.name)}</th>${r.cells.join("")}</tr>`);
  return `<div class="scroll"><table class="${esc(id)}"><thead>${head}</thead><tbody>\n${body.join("\n")}\n</tbody></table></div>`;
}

/** "n of k seeds" where Diff-Pruning is ahead (`better`: the sign that favours it). */
const ahead = (s: SeedSummary, better: 1 | -1): string => `${s.values.filter((v) => v * better > 0).length} of ${s.values.length}`;

function prefinetuneSection(o: StudyOptions, r: StudyResult): ReportSection[] {
  const methods = Object.keys(r.prefinetune);
  if (methods.length === 0) return [];
  const rows = methods.map((m) => {
    const p = r.prefinetune[m]!;
    const meanLoss = p.band_losses.reduce((a, s) => a + s.mean, 0) / Math.max(1, p.band_losses.length);
    return { name: m, cells: [cell("macs", p.macs, fixed(2, 1e-6)), cell("params", p.params, fixed(3, 1e-6)), cell("tPrime", p.t_prime, fixed(0)), cell("ssim", p.ssim, fixed(4)), plain("loss", meanLoss, fixed(5))] };
  });
  if (r.pretrained) {
    const meanLoss = r.pretrained.band_losses.reduce((a, b) => a + b, 0) / Math.max(1, r.pretrained.band_losses.length);
    rows.unshift({ name: "pretrained", cells: [plain("macs", r.pretrained.macs, fixed(2, 1e-6)), plain("params", r.pretrained.params, fixed(3, 1e-6)), plain("tPrime", null, fixed(0)), plain("ssim", 1, fixed(4)), plain("loss", meanLoss, fixed(5))] });
  }
  const text = `<p>Each criterion at ratio ${o.ratio}, before any fine-tuning: SSIM of ${o.consistencySamples} samples against the pretrained model's from the same noise, and the denoising loss on ${o.heldoutBatch} held-out images (${esc(o.heldoutData)}, fixed noise) averaged over the timestep bands. Means over the seeds with 95% bootstrap intervals.</p>`;
  const sections: ReportSection[] = [
    { id: "prefinetune", heading: "Right after pruning", html: text + table("prefinetune", ["Method", "MACs (M)", "#Params (M)", "T'", "SSIM <small>[95% CI]</small>", "Held-out loss"], rows) },
  ];
  if (r.bands.length > 0) {
    const mid = (i: number) => (r.bands[i]![0] + r.bands[i]![1] - 1) / 2;
    const series = methods.map((m) => ({ name: m, points: r.prefinetune[m]!.band_losses.map((s, i): [number, number] => [mid(i), s.mean]) }));
    if (r.pretrained) series.unshift({ name: "pretrained", points: r.pretrained.band_losses.map((l, i): [number, number] => [mid(i), l]) });
    sections.push({ id: "bands", heading: "Held-out loss by timestep band", html: lineChart(series, { title: "Held-out denoising loss before fine-tuning", xLabel: "timestep (band middle)", yLabel: "loss" }) });
  }
  return sections;
}

function finetunedSection(r: StudyResult): ReportSection[] {
  const sections: ReportSection[] = [];
  const floor = r.floor;
  for (const { budget, steps } of r.budgets) {
    const row = r.finetuned[String(budget)] ?? {};
    const methods = Object.keys(row);
    if (methods.length === 0) continue;
    const rows = methods.map((m) => ({ name: m, cells: [cell("fid", row[m]!.fid, fixed(2)), cell("kid", row[m]!.kid, significant), cell("ssim", row[m]!.ssim, fixed(4))] }));
    if (r.pretrained) rows.unshift({ name: "pretrained", cells: [plain("fid", r.pretrained.fid, fixed(2)), plain("kid", r.pretrained.kid, significant), plain("ssim", 1, fixed(4))] });
    if (floor) rows.push({ name: "real vs real (floor)", cells: [plain("fid", floor.fid, fixed(2)), plain("kid", floor.kid, significant), plain("ssim", null, fixed(4))] });
    const text = `<p>${steps} fine-tuning steps (${budget} of the base model's training), the reference recipe; ${r.sampler.num_samples} samples per model against as many real images. The floor: two disjoint real subsets of that size against each other.</p>`;
    sections.push({
      id: `finetuned-${budget}`,
      heading: `After fine-tuning: ${steps} steps (${budget})`,
      html: text + table("finetuned", ["Method", "FID <small>[95% CI]</small>", "KID <small>[95% CI]</small>", "SSIM <small>[95% CI]</small>"], rows),
    });
  }
  return sections;
}

/** The per-image paired SSIM differences of each seed, one line per seed. */
const perImage = (xs: PerSeedInterval[]) =>
  `<td data-key="perImage">${xs.map((x) => `seed ${x.seed}: ${x.mean >= 0 ? "+" : ""}${x.mean.toFixed(4)} <small>[${x.ci95[0].toFixed(4)}, ${x.ci95[1].toFixed(4)}]</small>`).join("<br>")}</td>`;

function pairedPrefinetuneSection(r: StudyResult): ReportSection[] {
  const p = r.paired;
  const pre = Object.entries(p?.prefinetune ?? {});
  if (!p || pre.length === 0) return [];
  const rows = pre.map(([m, d]) => ({
    name: `${p.reference} \u2212 ${m}`,
    cells: [cell("ssim", d.ssim, fixed(4)), `<td data-key="ahead">${ahead(d.ssim, 1)}</td>`, cell("loss", d.loss, fixed(5)), perImage(d.ssim_per_image)],
  }));
  const chart = intervalChart(
    pre.map(([m, d]) => ({ name: m, estimate: d.ssim.mean, ci: d.ssim.ci95 })),
    { title: `SSIM before fine-tuning: ${p.reference} minus each baseline`, xLabel: "paired SSIM difference (> 0: Diff-Pruning closer to the pretrained model)" },
  );
  return [
    {
      id: "paired-prefinetune",
      heading: "Paired differences right after pruning",
      html:
        `<p>Per seed, ${esc(p.reference)}'s SSIM minus the baseline's (same seed, same noise); the mean over seeds with its 95% bootstrap interval, and within each seed the per-image paired difference with its interval over the images. The held-out loss difference (its mean over the timestep bands) is negative where ${esc(p.reference)}'s loss is lower.</p>` +
        table("paired", ["Difference", "SSIM <small>[95% CI]</small>", "Seeds ahead", "Held-out loss <small>[95% CI]</small>", "SSIM per image, within each seed"], rows) +
        chart,
    },
  ];
}

function pairedFinetunedSection(r: StudyResult): ReportSection[] {
  const p = r.paired;
  if (!p) return [];
  const sections: ReportSection[] = [];
  const chartRows: IntervalRow[] = [];
  for (const { budget, steps } of r.budgets) {
    const row = Object.entries(p.finetuned[String(budget)] ?? {});
    if (row.length === 0) continue;
    const rows = row.map(([m, d]) => ({
      name: `${p.reference} \u2212 ${m}`,
      cells: [cell("fid", d.fid, fixed(2)), cell("kid", d.kid, significant), cell("ssim", d.ssim, fixed(4)), `<td data-key="ahead">${d.fid ? ahead(d.fid, -1) : ahead(d.ssim, 1)}</td>`, perImage(d.ssim_per_image)],
    }));
    for (const [m, d] of row) if (d.fid) chartRows.push({ name: `${m} (${steps} steps)`, estimate: d.fid.mean, ci: d.fid.ci95 });
    sections.push({
      id: `paired-finetuned-${budget}`,
      heading: `Paired differences after ${steps} steps (${budget})`,
      html:
        `<p>FID and KID: lower is better, so a negative difference favours ${esc(p.reference)}; SSIM: higher is better. "Seeds ahead" counts the seeds where ${esc(p.reference)} is better on ${row.some(([, d]) => d.fid) ? "FID" : "SSIM"}.</p>` +
        table("paired", ["Difference", "FID <small>[95% CI]</small>", "KID <small>[95% CI]</small>", "SSIM <small>[95% CI]</small>", "Seeds ahead", "SSIM per image, within each seed"], rows),
    });
  }
  if (chartRows.length > 0)
    sections.push({
      id: "paired-fid",
      heading: "Paired FID differences",
      html: intervalChart(chartRows, { title: `FID after fine-tuning: ${p.reference} minus each baseline`, xLabel: "paired FID difference (< 0: Diff-Pruning better)" }),
    });
  return sections;
}

function sweepSections(r: StudyResult): ReportSection[] {
  const sections: ReportSection[] = [];
  const { thr, ratio } = r.sweeps;
  if (thr.length > 0) {
    const chart = lineChart([{ name: "SSIM", points: thr.map((t): [number, number] => [t.thr, t.ssim.mean]) }], { title: "Diff-Pruning before fine-tuning: SSIM by threshold", xLabel: "thr", yLabel: "SSIM" });
    const rows = thr.map((t) => ({ name: String(t.thr), cells: [cell("tPrime", t.t_prime, fixed(1)), cell("ssim", t.ssim, fixed(4))] }));
    sections.push({ id: "thr-sweep", heading: "Threshold sweep", html: chart + table("thr-sweep", ["thr", "T'", "SSIM <small>[95% CI]</small>"], rows) });
  }
  const methods = Object.keys(ratio).filter((m) => ratio[m]!.length > 0);
  if (methods.length > 0) {
    const chart = lineChart(
      methods.map((m) => ({ name: m, points: ratio[m]!.map((p): [number, number] => [p.ratio, p.ssim.mean]) })),
      { title: "Before fine-tuning: SSIM by pruning ratio", xLabel: "ratio", yLabel: "SSIM" },
    );
    const ratios = [...new Set(methods.flatMap((m) => ratio[m]!.map((p) => p.ratio)))].sort((a, b) => a - b);
    // one row per criterion, one column per ratio: SSIM with its interval, the MACs under it
    const rows = methods.map((m) => ({
      name: m,
      cells: ratios.map((x) => {
        const p = ratio[m]!.find((q) => q.ratio === x);
        return p ? cell(`ssim-${x}`, p.ssim, fixed(4)).replace(/<\/td>$/, `<br><small>${(p.macs.mean / 1e6).toFixed(2)}M MACs</small></td>`) : cell(`ssim-${x}`, null, fixed(4));
      }),
    }));
    sections.push({ id: "ratio-sweep", heading: "Ratio sweep", html: chart + table("ratio-sweep", ["Method", ...ratios.map((x) => `ratio ${x}<br><small>SSIM [95% CI], MACs</small>`)], rows) });
  }
  return sections;
}

function samplesSection(o: StudyOptions, paths: StudyPaths, r: StudyResult): ReportSection[] {
  const seed = o.seeds[0]!;
  const figure = (name: string, file: string) => (existsSync(file) ? sampleFigure({ name, samples: new Uint8Array(readFileSync(file)) }) : "");
  const all = o.scratch ? [...o.methods, SCRATCH] : o.methods;
  const grids = (figures: string[]) => `<div class="grids">\n${figures.filter(Boolean).join("\n")}\n</div>`;
  const sections: ReportSection[] = [];
  const before = [figure("pretrained", join(paths.pretrained, "grid-prefinetune.png")), ...o.methods.map((m) => figure(m, join(paths.method(seed, m), "grid.png")))];
  if (before.some(Boolean)) sections.push({ id: "samples-prefinetune", heading: `Samples before fine-tuning (seed ${seed}, same noise)`, html: grids(before) });
  const last = r.budgets[r.budgets.length - 1];
  if (last) {
    const after = all.map((m) => figure(m, join(paths.budget(seed, m, last.budget), "grid.png")));
    if (after.some(Boolean)) sections.push({ id: "samples-finetuned", heading: `Samples after ${last.steps} steps (seed ${seed}, same noise)`, html: grids([figure("pretrained", join(paths.pretrained, "grid.png")), ...after]) });
  }
  return sections;
}

export function writeStudyReport(o: StudyOptions, paths: StudyPaths, r: StudyResult): void {
  const html = renderReport({
    title: "Diff-Pruning study: criteria over seeds, with paired differences",
    subtitle: `${displayPath(o.model)} on ${o.data}, ratio ${o.ratio}, seeds ${o.seeds.join(", ")}; DDIM ${o.samplingSteps} steps (skip ${o.skip}) from the same noise for every model`,
    rows: [],
    // the first seed's Diff-Pruning loop: its loss by timestep, the threshold, T'
    diffPruning: readPruningRecord(paths.pruned(o.seeds[0]!, "diff-pruning"))?.gradients ?? null,
    sections: [...prefinetuneSection(o, r), ...pairedPrefinetuneSection(r), ...sweepSections(r), ...finetunedSection(r), ...pairedFinetunedSection(r), ...samplesSection(o, paths, r)],
    notes: [
      "Intervals: 95% percentile bootstrap (10,000 resamples) of the mean over seeds; per image: over the images of one seed.",
      "Paired differences: Diff-Pruning minus the baseline in the same seed (the same calibration draw seed, the same sampling noise).",
      "FID and KID: the shipped Fashion-MNIST classifier's features (not Inception), samples against a real subset of the same size; KID: unbiased MMD^2, cubic polynomial kernel, mean over subsets.",
      "SSIM: against the pretrained model's samples from the same initial noise, images in [0, 1].",
      `Fine-tuning: ddpm_train.py's recipe (Adam 0.9/0.999, no weight decay, lr ${o.lr} constant, no warm-up, EMA 0.9999, grad clip 1), batch ${o.batchSize}; budgets as fractions of the base model's ${o.baseSteps} steps.`,
      `Command: diffprune study --out ${displayPath(o.out)}`,
    ],
  });
  writeFileAtomic(paths.report, html);
}
