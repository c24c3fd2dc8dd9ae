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
import type { Key } from "../src/core/partition.ts";
import type { KeyedState, NumericLayout } from "../src/state/keyed-state.ts";

/**
 * One event on its way to a keyed step: its source sequence, key, key hash and value; its event
 * time (NaN when the source declares none) and the source's watermark just before it (the
 * highest event time seen before it minus the allowed out-of-orderness), which depends only on
 * the log, so a replay decides lateness exactly as the first run did.
 */
export interface Rec {
  readonly seq: number;
  readonly key: Key;
  readonly hash: number;
  readonly value: unknown;
  readonly time: number;
  readonly watermark: number;
  /** The step it was keyed by (its `keyBy`): tells the two inputs of a join apart. */
  readonly via: string;
  /** An updating input took this row back (its previous version); `value` is that row. */
  readonly retract?: true;
}

/**
 * What an actor receives: records of one source, in sequence order, and `upTo`, the last source
 * sequence this batch accounts for (records of other partitions, filtered events and dead letters
 * included), so every actor's position advances with the source.
 */
export interface Batch {
  readonly source: string;
  /** Let go (emptied) once the batch is processed: see `process` in lifecycle.ts. */
  records: readonly Rec[];
  readonly upTo: number;
  /** The source's watermark after `upTo` (-Infinity without event time). */
  readonly watermark: number;
  /**
   * The source has been idle (no events) for its idle timeout: until its next events, it no
   * longer holds the actor's watermark back. Such a batch has no records.
   */
  readonly idle?: true;
}

export interface OperatorContext {
  readonly state: KeyedState<unknown>;
  /** The actor's event-time watermark: the lowest over its sources (idle ones aside); it never goes back. */
  readonly watermark: number;
  /** The source of the batch being processed. */
  readonly source: string;
  /** Processing time: the actor's clock (injected; a manual clock in tests). */
  now(): number;
  /**
   * Send an output to the step's stream sinks and to the steps that read it. `id` names it
   * uniquely and deterministically within the step (e.g. the input sequence), for the message's
   * Nats-Msg-Id. `time`: its event time. `before`: for a step whose output updates rows, the
   * row's previous version (retracted downstream); `output` undefined: the row is gone.
   */
  emit(id: string, output: unknown, time?: number, before?: unknown): void;
  /**
   * What the operator did outside of a record (a timer) threw: `value` goes to the dead letters
   * with the reason. `id` names it deterministically within the step, like `emit`'s.
   */
  fail(id: string, value: unknown, reason: string): void;
  /** Set a record aside as late, with the reason (the late-events stream and a counter). */
  late(rec: Rec, reason: string): void;
  /** For an operator that keeps its table rows itself: upsert row `rowKey` of key `key`. */
  putRow(key: Key, hash: number, rowKey: string, row: unknown): void;
}

export interface Operator {
  /** Fold one record into state and emit outputs. A throw makes the record a dead letter. */
  apply(ctx: OperatorContext, rec: Rec): void;
  /** The watermark moved forward to `ctx.watermark`: fire and expire what it passed. */
  advance?(ctx: OperatorContext): void;
  /**
   * Processing time is `now` (the actor's clock): fire the processing-time timers it passed. An
   * operator that has this gets a tick between batches, every `tickMs` of the actor's clock.
   */
  onTime?(ctx: OperatorContext, now: number): void;
  /**
   * Every value of the operator's state packs into this many numbers (an aggregate of counts,
   * sums, ...): the keyed state keeps them packed (src/state/keyed-state.ts).
   */
  readonly stateLayout?: NumericLayout<unknown>;
  /** Rebuild what the operator keeps beside the state (timer indexes) after a recovery. */
  restore?(state: KeyedState<unknown>): void;
  /** The table row of a key, from its state (table pages are built from the state)... */
  row(key: Key, state: unknown): unknown;
  /**
   * ... unless the operator keeps its table rows itself (`ctx.putRow`), because they outlive
   * its state: a window's row stays in the table after the window's state is dropped.
   */
  readonly ownsRows?: boolean;
  /**
   * How far behind its watermark the step's outputs may be in event time (an outer join emits an
   * unmatched event only when the watermark has passed it): the watermark it passes on to the
   * steps that read it is held back by this much, so they do not see its outputs as late.
   */
  readonly watermarkDelayMs?: number;
}
