/**
 * Progress of long work (generating orders, benchmark phases, a replay far behind): on a terminal
 * a bar redrawn in place with the rate and the time left; otherwise a plain line every few
 * seconds, which a log file or CI keeps readable. `render` is the pure part.
 *
 * @example
 * const bar = progress({ label: "publishing", total: 100_000, unit: "orders", terminal: platform.errInteractive, write: platform.err });
 * bar.update(25_000); // [#####...............]  25%  25,000/100,000 orders  12,500/s  ETA 6 s
 * bar.done();
 */
import { type Clock, systemClock } from "../core/clock.ts";

export interface ProgressOptions {
  readonly label: string;
  /** The amount when done; unknown: no bar, percentage or ETA. */
  readonly total?: number;
  /** What is counted, e.g. "events". */
  readonly unit?: string;
  /** Draw a bar in place (a terminal) or print plain lines. */
  readonly terminal: boolean;
  readonly write: (text: string) => void;
  readonly clock?: Clock;
  /** Plain lines at most this often (default 5000 ms); a bar is redrawn at most every 100 ms. */
  readonly everyMs?: number;
  /** Bar width in characters (default 24). */
  readonly width?: number;
}

export interface ProgressState {
  readonly label: string;
  readonly done: number;
  readonly total?: number;
  readonly unit?: string;
  /** Per second. */
  readonly rate: number;
  readonly elapsedMs: number;
}

export interface Progress {
  /** The amount done so far (absolute, not an increment). */
  update(done: number): void;
  /** Finish: the final line, with the average rate. */
  done(note?: string): void;
}

const count = (n: number) => Math.round(n).toLocaleString("en");

/** "4 s", "2 min 5 s", "1 h 3 min". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** One line of progress; `bar` adds the drawn bar (terminals). */
export function render(state: ProgressState, bar: { width: number } | undefined): string {
  const { label, done, total, unit, rate } = state;
  const parts = [label];
  const known = total !== undefined && total > 0;
  if (known && bar) {
    const filled = Math.min(bar.width, Math.floor((done / total) * bar.width));
    parts.push(`[${"#".repeat(filled)}${".".repeat(bar.width - filled)}]`);
  }
  if (known) parts.push(`${String(Math.min(100, Math.floor((done / total) * 100))).padStart(3)}%`);
  parts.push(`${count(done)}${known ? `/${count(total)}` : ""}${unit ? ` ${unit}` : ""}`);
  parts.push(`${count(rate)}/s`);
  if (known && done < total) parts.push(rate > 0 ? `ETA ${duration(((total - done) / rate) * 1000)}` : "ETA ?");
  return parts.join("  ");
}

export function progress(options: ProgressOptions): Progress {
  const clock = options.clock ?? systemClock;
  const started = clock.now();
  const everyMs = options.terminal ? 100 : (options.everyMs ?? 5000);
  const bar = options.terminal ? { width: options.width ?? 24 } : undefined;
  // The rate over the last few seconds: two samples, the older replaced when it is 5 s old.
  let window = { at: started, done: 0 };
  let latest = { at: started, done: 0 };
  let lastDrawn = started;
  let finished = false;
  const state = (done: number, now: number): ProgressState => {
    const span = now - window.at;
    const rate = span > 0 ? ((done - window.done) / span) * 1000 : 0;
    return {
      label: options.label,
      done,
      ...(options.total === undefined ? {} : { total: options.total }),
      ...(options.unit === undefined ? {} : { unit: options.unit }),
      rate,
      elapsedMs: now - started,
    };
  };
  const draw = (line: string) => options.write(options.terminal ? `\r${line}\x1b[K` : `${line}\n`);
  return {
    update(done) {
      if (finished) return;
      const now = clock.now();
      if (now - window.at >= 5000) window = latest;
      latest = { at: now, done };
      if (now - lastDrawn < everyMs) return;
      lastDrawn = now;
      draw(render(state(done, now), bar));
    },
    done(note) {
      if (finished) return;
      finished = true;
      const now = clock.now();
      const elapsed = now - started;
      const rate = elapsed > 0 ? (latest.done / elapsed) * 1000 : 0;
      const line = `${render({ ...state(latest.done, now), rate }, bar)}  in ${duration(elapsed)}${note ? `  ${note}` : ""}`;
      options.write(options.terminal ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
  };
}
