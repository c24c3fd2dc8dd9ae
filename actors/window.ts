/**
 * The window operator: per key, event-time windows (tumbling, hopping: `size` every `slide`, or
 * sessions: events closer than `gap` together) each folding its events with the step's aggregate.
 * A window's row is emitted when the actor's watermark passes the window's end, again for each
 * event within the allowed lateness; older events go to the late-events stream. State is dropped
 * once the watermark passes a window's end plus the allowed lateness. Emitted rows are also the
 * step's table rows, keyed `<key>|<windowStart>` (`windowRows`).
 * See docs/ARCHITECTURE.md, "Windows", for early updates, timers and restarts.
 *
 * @example
 * orders.keyBy("by-store", "store")
 *   .window("per-minute", { size: 60_000 })
 *   .aggregate("revenue-per-minute", (a) => ({ revenue: a.sum("revenue") }))
 *   .toStream("revenue-per-minute-out", { stream: "revenue_per_minute" });
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import { type Key, keyHash } from "../src/core/partition.ts";
import { windowRowKey } from "../src/state/table-page.ts";
import type { Operator, OperatorContext, Timers } from "./operator.ts";
import type { TableRows } from "./table-writer.ts";

export type WindowOptions =
  & (
    | { readonly size: number; readonly slide: number; readonly allowedLatenessMs: number }
    | { readonly gap: number; readonly allowedLatenessMs: number }
  )
  & {
    /**
     * "final" (default): a window's row is emitted when it closes (append-only). "updates": every
     * change emits the window's row at once (upserts into tables), with `final: false` until the
     * window closes and `final: true` from then on. Fixed windows only.
     */
    readonly emit?: "final" | "updates";
  };

/** A key's windows: window start to [aggregate state, emissions so far, window end, closed]. */
export type Windows = Record<string, Window>;
type Window = readonly [state: unknown[], emitted: number, end: number, closed?: 0 | 1];

/** A window's row: the aggregate's columns and the window. */
export type WindowRow = Record<string, unknown> & { readonly windowStart: number; readonly windowEnd: number };

/** A windowed step's table rows: its emitted rows, each under `<key>|<windowStart>`. */
export const windowRows: TableRows<Windows, WindowRow> = {
  of: "outputs",
  rowKey: (key, row) => windowRowKey(key, row.windowStart),
};

export function windowOperator(aggregate: CompiledAggregate<unknown>, options: WindowOptions): Operator<Windows, WindowRow> {
  const lateness = options.allowedLatenessMs;
  const gap = "gap" in options ? options.gap : 0;
  const size = "size" in options ? options.size : 0;
  const slide = "slide" in options ? options.slide : 0;
  const updates = options.emit === "updates";
  /** Look at a key when its window ends, and when its allowed lateness is over. */
  const schedule = (timers: Timers, key: Key, end: number) => {
    timers.at(key, end);
    if (lateness > 0) timers.at(key, end + lateness);
  };
  const emit = (ctx: OperatorContext<Windows, WindowRow>, key: Key, start: number, [state, , end]: Window, final: boolean) => {
    const row: WindowRow = {
      ...aggregate.row(key, state),
      windowStart: start,
      windowEnd: end,
      ...(updates ? { final } : {}),
    };
    ctx.emit(row, { time: end - 1 });
  };

  return {
    apply(ctx, rec) {
      const t = rec.time;
      if (!Number.isFinite(t)) throw new Error(`event time ${rec.time} is not a number of milliseconds`);
      const wm = ctx.watermark;
      const windows = ctx.state.get(rec.key, rec.hash);
      const next: Windows = { ...windows };
      /** Put the event's fold into window `start`, unless that window is closed for good. */
      const place = (start: number, end: number, state: unknown[], emitted: number, isNew: boolean): boolean => {
        if (end + lateness <= wm) return false;
        const closed = end <= wm;
        if (closed || updates) {
          // Late within the allowed lateness (the window closed already), or an early update:
          // send the window's new row now.
          emit(ctx, rec.key, start, [state, emitted, end], closed);
          emitted++;
        }
        if (isNew) schedule(ctx.timers, rec.key, end);
        next[start] = [state, emitted, end, closed ? 1 : 0];
        return true;
      };
      let accepted = false;
      if (gap > 0) {
        // A session: the event's own [t, t + gap), merged with every session it overlaps.
        let start = t;
        let end = t + gap;
        let state = aggregate.init(rec.value);
        let emitted = 0;
        const merged: string[] = [];
        for (const [s, [other, otherEmitted, otherEnd]] of Object.entries(next)) {
          if (Number(s) < t + gap && t < otherEnd) {
            merged.push(s);
            start = Math.min(start, Number(s));
            end = Math.max(end, otherEnd);
            state = aggregate.merge(other, state);
            emitted = Math.max(emitted, otherEmitted);
          }
        }
        if (end + lateness > wm) {
          for (const s of merged) delete next[s];
          accepted = place(start, end, state, emitted, true);
        }
      } else {
        const last = Math.floor(t / slide) * slide;
        for (let start = last - size + slide; start <= last; start += slide) {
          const before = next[start];
          const state = before ? aggregate.add(before[0], rec.value) : aggregate.init(rec.value);
          if (place(start, start + size, state, before ? before[1] : 0, !before)) accepted = true;
        }
      }
      if (!accepted) {
        ctx.late(
          rec,
          `event time ${t} is older than watermark ${wm} minus the allowed lateness ${lateness} ms: its window has closed`,
        );
        return;
      }
      ctx.state.set(rec.key, rec.hash, next);
    },
    /** Emit the windows of `key` that `time` closed, and drop those it expired. */
    onTimer(ctx, key, time) {
      const hash = keyHash(key);
      const windows = ctx.state.get(key, hash);
      if (!windows) return;
      let next: Windows | undefined;
      for (const [s, window] of Object.entries(windows)) {
        const [state, emitted, end, closed] = window;
        if (end > time) continue;
        next ??= { ...windows };
        if (!closed) {
          emit(ctx, key, Number(s), window, true);
          next[s] = [state, emitted + 1, end, 1];
        }
        if (end + lateness <= time) delete next[s];
      }
      if (!next) return;
      if (Object.keys(next).length === 0) ctx.state.delete(key, hash);
      else ctx.state.set(key, hash, next);
    },
    rearm(timers, key, windows) {
      for (const [, , end] of Object.values(windows)) schedule(timers, key, end);
    },
  };
}
