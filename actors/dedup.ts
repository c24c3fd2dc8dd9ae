/**
 * The dedup operator: per key, an event passes unless the last event that passed for its key is
 * less than `withinMs` away from it in event time; repeats are dropped. A key's state is that
 * last passing event's time, dropped once the watermark is `withinMs` past it (after which no
 * event of the key could be a repeat of it but a late one, and a late one passes): state stays
 * bounded on an endless stream. Expiry follows the watermark, so a replay and the batch oracle
 * drop exactly what the first run dropped.
 *
 * Passing events go to the step's stream sinks and the steps that read it, with the id
 * `<source>/<seq>`, at their own event time.
 *
 * @example
 * clicks.keyBy("by-click-id", "clickId").dedup("once", { withinMs: 60_000 })
 *   .toStream("unique-clicks", { stream: "unique_clicks" });
 */
import { keyHash } from "../src/core/partition.ts";
import type { KeyedState } from "../src/state/keyed-state.ts";
import type { Operator } from "./operator.ts";
import { EventTimers } from "./timers.ts";

export function dedupOperator(withinMs: number): Operator {
  /** Keys to look at when they may have expired. */
  const timers = new EventTimers();
  return {
    apply(ctx, rec) {
      if (!Number.isFinite(rec.time)) {
        throw new Error(`event time ${rec.time} is not a number of milliseconds (dedup needs event time)`);
      }
      const last = ctx.state.get(rec.key, rec.hash) as number | undefined;
      // A repeat, unless the key's state has expired (the watermark is withinMs past it).
      if (last !== undefined && last + withinMs > ctx.watermark && Math.abs(rec.time - last) < withinMs) return;
      ctx.state.set(rec.key, rec.hash, rec.time);
      timers.add(rec.time + withinMs, rec.key);
      ctx.emit(`${ctx.source}/${rec.seq}`, rec.value, rec.time);
    },
    advance(ctx) {
      const wm = ctx.watermark;
      for (const key of timers.takeDue(wm)) {
        const hash = keyHash(key);
        const last = ctx.state.get(key, hash) as number | undefined;
        if (last !== undefined && last + withinMs <= wm) ctx.state.delete(key, hash);
      }
    },
    restore(state: KeyedState<unknown>) {
      timers.clear();
      for (const [key, last] of state.entries()) timers.add((last as number) + withinMs, key);
    },
    row: (key, last) => ({ key, lastPassed: last }),
  };
}
