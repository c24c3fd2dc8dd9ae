/**
 * The operator contract: what an operator kind implements. An operator is plain synchronous code
 * over records; the framework owns its state store, its outputs, its checkpoints and its
 * lifecycle (actors/lifecycle.ts). The same record shapes serve every operator kind.
 *
 * @example
 * const counter: Operator = {
 *   apply(ctx, rec) {
 *     const n = ((ctx.state.get(rec.key, rec.hash) as number | undefined) ?? 0) + 1;
 *     ctx.state.set(rec.key, rec.hash, n);
 *   },
 *   row: (key, n) => ({ key, n }),
 * };
 */
import type { Key } from "../src/pipeline/partition.ts";
import type { KeyedState } from "../src/state/keyed-state.ts";

/** One event on its way to a keyed step: its source sequence, key, key hash and value. */
export interface Rec {
  readonly seq: number;
  readonly key: Key;
  readonly hash: number;
  readonly value: unknown;
}

/**
 * What an actor receives: records of one source, in sequence order, and `upTo`, the last source
 * sequence this batch accounts for (records of other partitions, filtered events and dead letters
 * included), so every actor's position advances with the source.
 */
export interface Batch {
  readonly source: string;
  readonly records: readonly Rec[];
  readonly upTo: number;
}

export interface OperatorContext {
  readonly state: KeyedState<unknown>;
  /** Send an output for this record to the step's stream sinks. */
  emit(rec: Rec, output: unknown): void;
}

export interface Operator {
  /** Fold one record into state and emit outputs. A throw makes the record a dead letter. */
  apply(ctx: OperatorContext, rec: Rec): void;
  /** The table row of a key, from its state (table pages are built from the state). */
  row(key: Key, state: unknown): unknown;
}
