/**
 * The aggregate operator: per key, fold each event into the key's state (one array slot per
 * column of the spec), then hand the new row to the step's sinks and to the steps that read it
 * (with the row's previous version, which they retract). Numbers-only state is kept packed; over
 * an updating input, retracted rows are taken back out; with a state TTL, a key idle that long in
 * event time is dropped, with its table row.
 * See docs/ARCHITECTURE.md, "Aggregates", for each of these.
 *
 * @example
 * const a = aggregates<Order>();
 * const spec = compileAggregate({ n: a.count(), qty: a.sum("qty") });
 * const op = aggregateOperator(spec, { emits: false });
 * const rows = aggregateRows(spec, {}); // its table rows, from state
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import { keyHash } from "../src/core/partition.ts";
import type { NumericLayout } from "../src/state/keyed-state.ts";
import type { Operator } from "./operator.ts";
import type { TableRows } from "./table-writer.ts";

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

/** An aggregate's state per key: its columns' state, and with a TTL the key's last event time too. */
export type AggregateState = unknown[] | TimedState;
type TimedState = readonly [state: unknown[], lastTime: number];

/** An aggregate's output: a key's row. */
export type AggregateRow = Record<string, unknown>;

/** The table rows of an aggregate step: each key's row, from its state. */
export function aggregateRows(
  aggregate: CompiledAggregate<unknown>,
  options: Pick<AggregateOptions, "ttlMs">,
): TableRows<AggregateState, AggregateRow> {
  if (options.ttlMs === undefined) return { of: "state", row: (key, state) => aggregate.row(key, state as unknown[]) };
  return { of: "state", row: (key, state) => aggregate.row(key, (state as TimedState)[0]) };
}

export function aggregateOperator(
  aggregate: CompiledAggregate<unknown>,
  options: AggregateOptions,
): Operator<AggregateState, AggregateRow> {
  const { emits, ttlMs } = options;
  const retracts = options.retracts ?? false;
  const layout = aggregate.layout as NumericLayout<AggregateState> | undefined;
  if (options.updating) {
    const op: Operator<unknown[], AggregateRow> = {
      apply(ctx, rec) {
        const before = ctx.state.get(rec.key, rec.hash);
        let after: unknown[] | undefined;
        if (rec.retract) {
          if (before === undefined) throw new Error(`a retraction for key ${JSON.stringify(rec.key)}, which holds no rows`);
          after = aggregate.remove(before, rec.value);
        } else after = before === undefined ? aggregate.init(rec.value) : aggregate.add(before, rec.value);
        if (after === undefined) ctx.state.delete(rec.key, rec.hash);
        else ctx.state.set(rec.key, rec.hash, after);
        if (emits) {
          const beforeRow = retracts && before ? aggregate.row(rec.key, before) : undefined;
          ctx.emit(after && aggregate.row(rec.key, after), beforeRow === undefined ? undefined : { before: beforeRow });
        }
      },
      ...(layout ? { stateLayout: layout as NumericLayout<unknown[]> } : {}),
    };
    return op as unknown as Operator<AggregateState, AggregateRow>;
  }
  if (ttlMs === undefined) {
    const op: Operator<unknown[], AggregateRow> = {
      apply(ctx, rec) {
        const before = ctx.state.get(rec.key, rec.hash);
        const after = before === undefined ? aggregate.init(rec.value) : aggregate.add(before, rec.value);
        ctx.state.set(rec.key, rec.hash, after);
        if (emits) {
          const beforeRow = retracts && before ? aggregate.row(rec.key, before) : undefined;
          ctx.emit(aggregate.row(rec.key, after), beforeRow === undefined ? undefined : { before: beforeRow });
        }
      },
      ...(layout ? { stateLayout: layout as NumericLayout<unknown[]> } : {}),
    };
    return op as unknown as Operator<AggregateState, AggregateRow>;
  }
  const op: Operator<TimedState, AggregateRow> = {
    apply(ctx, rec) {
      if (!Number.isFinite(rec.time)) {
        throw new Error(`event time ${rec.time} is not a number of milliseconds (state TTL needs event time)`);
      }
      const before = ctx.state.get(rec.key, rec.hash);
      const state = before === undefined ? aggregate.init(rec.value) : aggregate.add(before[0], rec.value);
      const lastTime = Math.max(before?.[1] ?? Number.NEGATIVE_INFINITY, rec.time);
      ctx.state.set(rec.key, rec.hash, [state, lastTime]);
      ctx.timers.at(rec.key, lastTime + ttlMs);
      if (emits) {
        const beforeRow = retracts && before ? aggregate.row(rec.key, before[0]) : undefined;
        ctx.emit(aggregate.row(rec.key, state), beforeRow === undefined ? undefined : { before: beforeRow });
      }
    },
    onTimer(ctx, key, time) {
      const hash = keyHash(key);
      const entry = ctx.state.get(key, hash);
      // Expired at `time` (not merely by the watermark, which may be further on: a later timer of
      // the key would be the one to drop it then).
      if (!entry || entry[1] + ttlMs > time) return;
      ctx.state.delete(key, hash);
      // The steps that read this one see the row leave.
      if (retracts) ctx.emit(undefined, { before: aggregate.row(key, entry[0]), time: entry[1] + ttlMs });
    },
    rearm(timers, key, entry) {
      timers.at(key, entry[1] + ttlMs);
    },
  };
  return op as unknown as Operator<AggregateState, AggregateRow>;
}
