/**
 * The aggregate operator: per key, fold each event into the key's state (one array slot per
 * column of the spec), then hand the new row to the step's sinks and to the steps that read it
 * (with the row's previous version, which they retract).
 *
 * A state of numbers only (count, sum, min, max, avg) is kept packed (`stateLayout`, see
 * src/state/keyed-state.ts): 16 bytes for a count and a sum instead of an array object per key.
 *
 * Over an updating input (the rows of another aggregate, grouped again), a retracted row is
 * taken back out of its key's state; a key whose last row left is dropped, with its table row.
 *
 * With a state TTL, a key whose last event is older than the watermark minus the TTL is dropped
 * (its table row goes with it; a later event starts it afresh). Expiry follows the watermark, so a
 * replay drops exactly what the first run dropped. The key's state is then
 * `[aggregate state, last event time]`, and timers are derived from it.
 *
 * @example
 * const a = aggregates<Order>();
 * const op = aggregateOperator(compileAggregate({ n: a.count(), qty: a.sum("qty") }), { emits: false });
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import { keyHash } from "../src/core/partition.ts";
import type { KeyedState, NumericLayout } from "../src/state/keyed-state.ts";
import type { Operator } from "./operator.ts";
import { EventTimers } from "./timers.ts";

export interface AggregateOptions {
  /** Whether a stream sink or a later step reads this step's updates (rows are built only then). */
  readonly emits: boolean;
  /** Whether a later step reads them, retracting a row's previous version (built only then). */
  readonly retracts?: boolean;
  /** Drop a key this long (event time) after its last event. */
  readonly ttlMs?: number | undefined;
  /** The input is a changelog: records may be retractions. */
  readonly updating?: boolean;
}

export function aggregateOperator(aggregate: CompiledAggregate<unknown>, options: AggregateOptions): Operator {
  const { emits, ttlMs } = options;
  const retracts = options.retracts ?? false;
  if (options.updating) {
    return {
      apply(ctx, rec) {
        const before = ctx.state.get(rec.key, rec.hash) as unknown[] | undefined;
        let after: unknown[] | undefined;
        if (rec.retract) {
          if (before === undefined) throw new Error(`a retraction for key ${JSON.stringify(rec.key)}, which holds no rows`);
          after = aggregate.remove(before, rec.value);
        } else after = before === undefined ? aggregate.init(rec.value) : aggregate.add(before, rec.value);
        if (after === undefined) ctx.state.delete(rec.key, rec.hash);
        else ctx.state.set(rec.key, rec.hash, after);
        if (emits) {
          ctx.emit(
            `${ctx.source}/${rec.seq}${rec.retract ? "-" : "+"}`,
            after && aggregate.row(rec.key, after),
            rec.time,
            retracts && before ? aggregate.row(rec.key, before) : undefined,
          );
        }
      },
      row: (key, state) => aggregate.row(key, state as unknown[]),
      stateLayout: aggregate.layout as NumericLayout<unknown> | undefined,
    };
  }
  if (ttlMs === undefined) {
    return {
      apply(ctx, rec) {
        const before = ctx.state.get(rec.key, rec.hash) as unknown[] | undefined;
        const after = before === undefined ? aggregate.init(rec.value) : aggregate.add(before, rec.value);
        ctx.state.set(rec.key, rec.hash, after);
        if (emits) {
          ctx.emit(
            `${ctx.source}/${rec.seq}`,
            aggregate.row(rec.key, after),
            rec.time,
            retracts && before ? aggregate.row(rec.key, before) : undefined,
          );
        }
      },
      row: (key, state) => aggregate.row(key, state as unknown[]),
      stateLayout: aggregate.layout as NumericLayout<unknown> | undefined,
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
      if (emits) {
        ctx.emit(
          `${ctx.source}/${rec.seq}`,
          aggregate.row(rec.key, state),
          rec.time,
          retracts && before ? aggregate.row(rec.key, before[0]) : undefined,
        );
      }
    },
    advance(ctx) {
      const wm = ctx.watermark;
      for (const key of timers.takeDue(wm)) {
        const hash = keyHash(key);
        const entry = ctx.state.get(key, hash) as Entry | undefined;
        if (!entry || entry[1] + ttlMs > wm) continue;
        ctx.state.delete(key, hash);
        // The steps that read this one see the row leave.
        if (retracts) ctx.emit(`ttl/${key}/${entry[1]}`, undefined, entry[1] + ttlMs, aggregate.row(key, entry[0]));
      }
    },
    restore(state: KeyedState<unknown>) {
      timers.clear();
      for (const [key, entry] of state.entries()) timers.add((entry as Entry)[1] + ttlMs, key);
    },
    row: (key, entry) => aggregate.row(key, (entry as Entry)[0]),
  };
}
