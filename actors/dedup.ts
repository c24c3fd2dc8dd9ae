/**
 * The dedup operator: per key, an event passes unless the last event that passed for its key is
 * less than `withinMs` away from it in event time; repeats are dropped. A key's state is that
 * last passing event's time, dropped once the watermark is `withinMs` past it (after which no
 * event of the key could be a repeat of it but a late one, and a late one passes): state stays
 * bounded on an endless stream. Expiry follows the watermark, so a replay and the batch oracle
 * drop exactly what the first run dropped.
 *
 * Passing events go to the step's stream sinks and the steps that read it, at their own event
 * time.
 *
 * @example
 * clicks.keyBy("by-click-id", "clickId").dedup("once", { withinMs: 60_000 })
 *   .toStream("unique-clicks", { stream: "unique_clicks" });
 */
import { keyHash } from "../src/core/partition.ts";
import type { Operator } from "./operator.ts";

/** A key's state: the event time of the last event that passed. */
export function dedupOperator(withinMs: number): Operator<number, unknown> {
  return {
    apply(ctx, rec) {
      if (!Number.isFinite(rec.time)) {
        throw new Error(`event time ${rec.time} is not a number of milliseconds (dedup needs event time)`);
      }
      const last = ctx.state.get(rec.key, rec.hash);
      // A repeat, unless the key's state has expired (the watermark is withinMs past it).
      if (last !== undefined && last + withinMs > ctx.watermark && Math.abs(rec.time - last) < withinMs) return;
      ctx.state.set(rec.key, rec.hash, rec.time);
      ctx.timers.at(rec.key, rec.time + withinMs);
      ctx.emit(rec.value);
    },
    onTimer(ctx, key, time) {
      const hash = keyHash(key);
      const last = ctx.state.get(key, hash);
      if (last !== undefined && last + withinMs <= time) ctx.state.delete(key, hash);
    },
    rearm(timers, key, last) {
      timers.at(key, last + withinMs);
    },
  };
}
