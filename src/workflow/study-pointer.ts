// What the quick demo cannot tell and the study does: the demo is one seed with intervals over
// images; `diffprune study` repeats the comparison over seeds with paired intervals. The demo
// says so, and quotes the shipped study's numbers (docs/results/study.json) when it is there.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../io/index.js";
import type { SeedSummary, StudyResult } from "./study-summary.js";

/** The study the project ships, written by `diffprune study` (docs/results.md is written from it). */
export const SHIPPED_STUDY = join(packageRoot(), "docs", "results", "study.json");

const interval = (s: SeedSummary, digits: number, sign = false): string => {
  const f = (x: number) => `${sign && x > 0 ? "+" : ""}${x.toFixed(digits)}`;
  return `${f(s.mean)} [${f(s.ci95[0])}, ${f(s.ci95[1])}]`;
};

/** The study's headline numbers: the paired SSIM differences before fine-tuning, and FID after the largest budget. */
export function studyHeadline(study: StudyResult): string[] {
  const lines: string[] = [];
  const seeds = (s: SeedSummary) => `${s.seeds.length} seed${s.seeds.length === 1 ? "" : "s"}`;
  if (study.paired) {
    const before = Object.entries(study.paired.prefinetune).map(([m, d]) => `${m} ${interval(d.ssim, 3, true)} (${seeds(d.ssim)})`);
    if (before.length > 0) lines.push(`SSIM right after pruning, ${study.paired.reference} minus each, 95% CI: ${before.join("; ")}.`);
  }
  const last = study.budgets[study.budgets.length - 1];
  const fid = Object.entries((last && study.finetuned[String(last.budget)]) ?? {}).flatMap(([m, r]) => (r.fid ? [`${m} ${interval(r.fid, 1)} (${seeds(r.fid)})`] : []));
  if (last && fid.length > 0) {
    const floor = study.floor?.fid;
    lines.push(`FID after ${last.steps} fine-tuning steps (${study.sampler.num_samples} samples), mean over seeds, 95% CI: ${fid.join("; ")}${typeof floor === "number" ? `; real vs real ${floor.toFixed(1)}` : ""}.`);
  }
  return lines;
}

/** The demo's pointer to the study, with the shipped study's headline when `file` holds one. */
export function studyPointer(file: string = SHIPPED_STUDY): string[] {
  const lines = [
    "This is the quick look: one seed, and SSIM intervals over images, not seeds. diffprune study (docs/results.md) measures the same comparison over 5 seeds, with 95% bootstrap intervals and paired differences: SSIM right after pruning, the held-out loss per timestep band, the thr and ratio sweeps, and FID and KID on 2,000 samples beside the real-vs-real floor after fine-tuning for 10% and 20% of the base model's training.",
  ];
  if (!existsSync(file)) return lines;
  const headline = studyHeadline(JSON.parse(readFileSync(file, "utf8")) as StudyResult);
  return headline.length > 0 ? [...lines, `The shipped study found: ${headline.join(" ")}`] : lines;
}
