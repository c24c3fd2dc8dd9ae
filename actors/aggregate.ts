/**
 * The aggregate operator: per key, fold each event into the key's state (one array slot per
 * column of the spec), then hand the new row to the step's sinks.
 *
 * @example
 * const a = aggregates<Order>();
 * const op = aggregateOperator(compileAggregate({ n: a.count(), qty: a.sum("qty") }), false);
 */
import type { CompiledAggregate } from "../src/pipeline/aggregate.ts";
import type { Operator } from "./operator.ts";

/** `emits`: whether any stream sink reads this step's updates (rows are built only then). */
export function aggregateOperator(aggregate: CompiledAggregate<unknown>, emits: boolean): Operator {
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
