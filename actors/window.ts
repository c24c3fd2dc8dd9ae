/**
 * The window operator: per key, event-time windows (tumbling, or hopping: `size` every `slide`)
 * each folding its events with the step's aggregate. A window's row is emitted once, when the
 * actor's watermark passes the window's end; an event that arrives after that but within the
 * allowed lateness updates the window and emits its row again; an event whose every window is
 * older than that goes to the late-events stream. A window's state is dropped as soon as the
 * watermark passes its end plus the allowed lateness, so state stays bounded on an endless
 * stream.
 *
 * Timers are derived from state (and rebuilt from it after a recovery); the watermark that fires
 * them is part of the checkpoint, so after a restart nothing fires twice (the Nats-Msg-Id of a
 * window's n-th emission is `<key>/<start>/<n>`) and nothing is missed.
 *
 * @example
 * orders.keyBy("by-store", "store")
 *   .window("per-minute", { size: 60_000 })
 *   .aggregate("revenue-per-minute", (a) => ({ revenue: a.sum("revenue") }))
 *   .toStream("revenue-per-minute-out", { stream: "revenue_per_minute" });
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import { type Key, keyHash } from "../src/pipeline/partition.ts";
import type { KeyedState } from "../src/state/keyed-state.ts";
import type { Operator, OperatorContext } from "./operator.ts";

export interface WindowOptions {
  readonly size: number;
  readonly slide: number;
  readonly allowedLatenessMs: number;
}

/** A key's windows: window start to [aggregate state, emissions so far]. */
type Windows = Record<string, readonly [state: unknown[], emitted: number]>;

export function windowOperator(aggregate: CompiledAggregate<unknown>, options: WindowOptions): Operator {
  const { size, slide, allowedLatenessMs: lateness } = options;
  /** Due time to the keys to look at then (a window's end, and its end plus lateness). */
  const timers = new Map<number, Set<Key>>();
  const addTimer = (at: number, key: Key) => {
    let keys = timers.get(at);
    if (!keys) timers.set(at, (keys = new Set()));
    keys.add(key);
  };
  const schedule = (key: Key, start: number) => {
    addTimer(start + size, key);
    if (lateness > 0) addTimer(start + size + lateness, key);
  };
  const emit = (ctx: OperatorContext, key: Key, start: number, state: unknown[], n: number) => {
    ctx.emit(`${key}/${start}/${n}`, { ...aggregate.row(key, state), windowStart: start, windowEnd: start + size });
  };
  /** Emit what the watermark closed and drop what it expired, for one key. */
  const visit = (ctx: OperatorContext, key: Key) => {
    const hash = keyHash(key);
    const windows = ctx.state.get(key, hash) as Windows | undefined;
    if (!windows) return;
    const wm = ctx.watermark;
    let next: Record<string, readonly [unknown[], number]> | undefined;
    for (const [s, [state, emitted]] of Object.entries(windows)) {
      const start = Number(s);
      const end = start + size;
      if (end > wm) continue;
      next ??= { ...windows };
      if (emitted === 0) {
        emit(ctx, key, start, state, 0);
        next[s] = [state, 1];
      }
      if (end + lateness <= wm) delete next[s];
    }
    if (!next) return;
    if (Object.keys(next).length === 0) ctx.state.delete(key, hash);
    else ctx.state.set(key, hash, next);
  };

  return {
    apply(ctx, rec) {
      const t = rec.time;
      if (!Number.isFinite(t)) throw new Error(`event time ${rec.time} is not a number of milliseconds`);
      const wm = ctx.watermark;
      const windows = ctx.state.get(rec.key, rec.hash) as Windows | undefined;
      const next: Record<string, readonly [unknown[], number]> = { ...windows };
      const last = Math.floor(t / slide) * slide;
      let accepted = false;
      for (let start = last - size + slide; start <= last; start += slide) {
        const end = start + size;
        if (end + lateness <= wm) continue; // this window is closed for good
        const before = next[start];
        const state = before ? aggregate.add(before[0], rec.value) : aggregate.init(rec.value);
        let emitted = before ? before[1] : 0;
        if (end <= wm) {
          // Late, within the allowed lateness: the window fired already; send its new row now.
          emit(ctx, rec.key, start, state, emitted);
          emitted++;
        }
        if (!before) schedule(rec.key, start);
        next[start] = [state, emitted];
        accepted = true;
      }
      if (!accepted) {
        ctx.late(rec, `event time ${t} is older than watermark ${wm} minus the allowed lateness ${lateness} ms: its windows (size ${size} ms) have closed`);
        return;
      }
      ctx.state.set(rec.key, rec.hash, next);
    },
    advance(ctx) {
      const wm = ctx.watermark;
      const due = [...timers.keys()].filter((at) => at <= wm).sort((a, b) => a - b);
      for (const at of due) {
        const keys = timers.get(at)!;
        timers.delete(at);
        for (const key of keys) visit(ctx, key);
      }
    },
    restore(state: KeyedState<unknown>) {
      timers.clear();
      for (const [key, windows] of state.entries()) {
        for (const s of Object.keys(windows as Windows)) schedule(key, Number(s));
      }
    },
    row: (key, windows) => ({ key, windows }),
  };
}
