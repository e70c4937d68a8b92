// A one-line progress bar on stderr: count, rate, ETA and whatever the caller adds (loss).
// On a terminal it redraws in place; otherwise (logs, CI) it prints a line every few seconds.

export const formatTime = (s: number): string => {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(sec).padStart(2, "0")}s`;
};

export class Progress {
  readonly #start = Date.now();
  readonly #tty = process.stderr.isTTY === true;
  #lastPrint = 0;
  #startCount: number;

  constructor(
    readonly label: string,
    public total: number,
    start = 0,
    readonly unit = "it",
  ) {
    this.#startCount = start;
  }

  update(done: number, extra = ""): void {
    const now = Date.now();
    const final = done >= this.total;
    if (!final && now - this.#lastPrint < (this.#tty ? 200 : 5000)) return;
    this.#lastPrint = now;
    const elapsed = (now - this.#start) / 1000;
    // no rate (nor ETA) before anything was timed: a first update made at once would read 1e9 it/s
    const rate = elapsed > 0.05 && done > this.#startCount ? (done - this.#startCount) / elapsed : NaN;
    const eta = (this.total - done) / rate;
    const width = 24;
    const filled = Math.round((width * done) / this.total);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    const line = `${this.label} [${bar}] ${done}/${this.total} ${Number.isFinite(rate) ? rate.toFixed(2) : "?"} ${this.unit}/s ETA ${formatTime(eta)}${extra ? "  " + extra : ""}`;
    if (this.#tty) process.stderr.write(`\r${line}\x1b[K${final ? "\n" : ""}`);
    else process.stderr.write(line + "\n");
  }

  /** A message above the bar. */
  note(message: string): void {
    process.stderr.write(this.#tty ? `\r\x1b[K${message}\n` : `${message}\n`);
  }
}
