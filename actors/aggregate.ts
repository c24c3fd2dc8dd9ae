/**
 * The aggregate operator: per key, fold each event into the key's state (one array slot per
 * column of the spec), then hand the new row to the step's sinks.
 *
 * With a state TTL, a key whose last event is older than the watermark minus the TTL is dropped
 * (its table row goes with it; a later event starts it afresh). Expiry follows the watermark, so a
 * replay drops exactly what the first run dropped. The key's state is then
 * `[aggregate state, last event time]`, and timers are derived from it.
 *
 * @example
 * const a = aggregates<Order>();
 * const op = aggregateOperator(compileAggregate({ n: a.count(), qty: a.sum("qty") }), false);
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import { keyHash } from "../src/pipeline/partition.ts";
import type { KeyedState } from "../src/state/keyed-state.ts";
import type { Operator } from "./operator.ts";
import { EventTimers } from "./timers.ts";

/** `emits`: whether any stream sink reads this step's updates (rows are built only then). */
export function aggregateOperator(aggregate: CompiledAggregate<unknown>, emits: boolean, ttlMs?: number): Operator {
  if (ttlMs === undefined) {
    return {
      apply(ctx, rec) {
        const before = ctx.state.get(rec.key, rec.hash) as unknown[] | undefined;
        const after = before === undefined ? aggregate.init(rec.value) : aggregate.add(before, rec.value);
        ctx.state.set(rec.key, rec.hash, after);
        if (emits) ctx.emit(`${ctx.source}/${rec.seq}`, aggregate.row(rec.key, after));
      },
      row: (key, state) => aggregate.row(key, state as unknown[]),
    };
  }
  type Entry = readonly [state: unknown[], lastTime: number];
  /** Keys to look at when they may have expired. */
  const timers = new EventTimers();
  return {
    apply(ctx, rec) {
      if (!Number.isFinite(rec.time)) {
        throw new Error(`event time ${rec.time} is not a number of milliseconds (state TTL needs event time)`);
      }
      const before = ctx.state.get(rec.key, rec.hash) as Entry | undefined;
      const state = before === undefined ? aggregate.init(rec.value) : aggregate.add(before[0], rec.value);
      const lastTime = Math.max(before?.[1] ?? Number.NEGATIVE_INFINITY, rec.time);
      ctx.state.set(rec.key, rec.hash, [state, lastTime]);
      timers.add(lastTime + ttlMs, rec.key);
      if (emits) ctx.emit(`${ctx.source}/${rec.seq}`, aggregate.row(rec.key, state));
    },
    advance(ctx) {
      const wm = ctx.watermark;
      for (const key of timers.takeDue(wm)) {
        const hash = keyHash(key);
        const entry = ctx.state.get(key, hash) as Entry | undefined;
        if (entry && entry[1] + ttlMs <= wm) ctx.state.delete(key, hash);
      }
    },
    restore(state: KeyedState<unknown>) {
      timers.clear();
      for (const [key, entry] of state.entries()) timers.add((entry as Entry)[1] + ttlMs, key);
    },
    row: (key, entry) => aggregate.row(key, (entry as Entry)[0]),
  };
}
