// A training run's log.jsonl: one JSON object per logged step, appended as training goes.
// A crash mid-append leaves a torn last line, which resuming drops (and says so); any other
// line that is not an entry is an error naming the file and line. A run that restarts from the
// checkpoint of step s cuts the log back to step s, so no step is logged twice.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../io/index.js";

export const LOG_NAME = "log.jsonl";

/** The name of a run's file or folder of step `step` (samples/step-0000500.png, snapshots/step-0001000). */
export const stepName = (step: number): string => `step-${String(step).padStart(7, "0")}`;

export interface LogEntry {
  step: number;
  /** The mean loss since the previous entry; null when it was not finite. */
  loss: number | null;
  lr: number;
  grad_norm: number | null;
  time: string;
}

export class RunLogError extends Error {
  override name = "RunLogError";
}

export interface RunLog {
  /** The file's contents. */
  text: string;
  /** The entries' lines as written, with their steps. */
  lines: { text: string; step: number }[];
  /** The torn last line, when an interrupted write left one. */
  torn: string | null;
}

/** Why `text` is not a log entry, or null when it is one. */
function entryError(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `it is not JSON (${err instanceof Error ? err.message : String(err)})`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "it is not a JSON object";
  const step = (value as { step?: unknown }).step;
  if (!Number.isInteger(step) || (step as number) < 1) return `its step is ${JSON.stringify(step) ?? "missing"}, not a positive integer`;
  return null;
}

/** Reads a run's log; a missing log is an empty one. */
export function readRunLog(file: string): RunLog {
  if (!existsSync(file)) return { text: "", lines: [], torn: null };
  const text = readFileSync(file, "utf8");
  const rows = text.split("\n");
  let last = rows.length - 1;
  while (last >= 0 && rows[last]!.trim() === "") last--;
  const lines: RunLog["lines"] = [];
  let torn: string | null = null;
  rows.forEach((row, i) => {
    if (row.trim() === "") return;
    const why = entryError(row);
    if (why === null) lines.push({ text: row, step: (JSON.parse(row) as LogEntry).step });
    else if (i === last) torn = row;
    else {
      const shown = row.length > 60 ? `${row.slice(0, 60)}...` : row;
      throw new RunLogError(`${file} line ${i + 1} is not a log entry: ${why} (${JSON.stringify(shown)}); fix or delete that line (the log is a record only), or train into a new folder`);
    }
  });
  return { text, lines, torn };
}

/**
 * Cuts the log back to the entries of steps up to `step` (a run restarting there logs the rest
 * again) and drops a torn last line. Returns a note about the torn line, or null.
 */
export function trimRunLog(file: string, step: number): string | null {
  const { text, lines, torn } = readRunLog(file);
  const kept = lines
    .filter((l) => l.step <= step)
    .map((l) => l.text + "\n")
    .join("");
  // Rewritten also when only a newline is missing: the next entry would run into the last.
  if (kept !== text) writeFileAtomic(file, kept);
  return torn === null ? null : `${file}: dropped a torn last line (${Buffer.byteLength(torn)} bytes, left by an interrupted write)`;
}

/** (step, loss) of every entry with a finite loss: the training curve. A missing log has none. */
export function readLossCurve(file: string): [number, number][] {
  return readRunLog(file).lines.flatMap((l) => {
    const { loss } = JSON.parse(l.text) as LogEntry;
    return typeof loss === "number" ? [[l.step, loss] as [number, number]] : [];
  });
}

export function appendLogEntry(file: string, entry: LogEntry): void {
  appendFileSync(file, JSON.stringify(entry) + "\n");
}
