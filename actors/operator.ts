/**
 * The operator contract: what an operator kind implements. An operator is plain synchronous code
 * over records and timers, typed by the state it keeps per key (`S`) and the outputs it emits
 * (`Out`). The framework owns the rest: the keyed state store, the timers, the output ids, the
 * tables and edges its outputs go to, checkpoints and the lifecycle (actors/operator-actor.ts).
 *
 * @example
 * const counter: Operator<number, { key: Key; n: number }> = {
 *   apply(ctx, rec) {
 *     const n = (ctx.state.get(rec.key, rec.hash) ?? 0) + 1;
 *     ctx.state.set(rec.key, rec.hash, n);
 *     ctx.emit({ key: rec.key, n });
 *   },
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
export interface Rec<V = unknown> {
  readonly seq: number;
  readonly key: Key;
  readonly hash: number;
  readonly value: V;
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
  /**
   * The first source sequence this batch accounts for: where its reader started, or the one
   * after its reader's previous batch. An actor whose position is behind it did not get what
   * lies between (it recovered while that reader read on) and waits for a reading from its position.
   */
  readonly from: number;
  readonly upTo: number;
  /** The source's watermark after `upTo` (-Infinity without event time). */
  readonly watermark: number;
  /** An edge's: each writing partition's watermark after `upTo` (`watermark` is the lowest of them). */
  readonly writers?: readonly number[];
}

export interface EmitOptions<Out> {
  /** The output's event time. Default: the record's time, the timer's, or (a clock timer) the watermark. */
  readonly time?: number;
  /** For a step whose outputs update rows: the row's previous version, which readers retract. */
  readonly before?: Out;
  /**
   * The held inputs it pairs (a join: the left and right events' sequences; no right: an
   * unmatched left event). The output is then named by them rather than by the record or timer
   * at hand, so a replay that meets the two in another order names it the same: one output per
   * pair.
   */
  readonly from?: readonly [left: number, right?: number];
}

/** Timers, kept by the framework: derived from state, so an operator sets them again after a recovery (`rearm`). */
export interface Timers {
  /** Call `onTimer(key, time)` once the watermark reaches `time` (set twice, it fires once). */
  at(key: Key, time: number): void;
  /** Call `onClock(key, time)` once the actor's clock reaches `time`. */
  atClock(key: Key, time: number): void;
}

export interface OperatorContext<S, Out> {
  readonly state: KeyedState<S>;
  /** The actor's event-time watermark: the lowest over its sources (idle ones aside); it never goes back. */
  readonly watermark: number;
  /** The source of the record being applied. */
  readonly source: string;
  readonly timers: Timers;
  /** Processing time: the actor's clock (injected; a manual clock in tests). */
  now(): number;
  /**
   * Send an output to the step's sinks and to the steps that read it, under an id the framework
   * derives from what caused it (the record being applied, the timer firing, or `from`), so a
   * replay sends it under the same id. `output` undefined: the row is gone (give `before`).
   */
  emit(output: Out | undefined, options?: EmitOptions<Out>): void;
  /** Handling a timer threw: `value` goes to the dead letters with the reason. */
  fail(value: unknown, reason: string): void;
  /** Set a record aside as late, with the reason (the late-events stream and a counter). */
  late(rec: Rec, reason: string): void;
}

export interface Operator<S, Out, In = unknown> {
  /** Fold one record into state and emit outputs. A throw makes the record a dead letter. */
  apply(ctx: OperatorContext<S, Out>, rec: Rec<In>): void;
  /**
   * The watermark reached `time`, the time of a timer this operator set for `key`. Its outputs are
   * named by (key, time), whatever the watermark: emit what belongs to `time` only (timers fire in
   * time order, each before the first record the watermark passed it for). A timer set meanwhile
   * at or before `time` is this call's to handle.
   */
  onTimer?(ctx: OperatorContext<S, Out>, key: Key, time: number): void;
  /** The actor's clock reached `time`, the time of a clock timer this operator set for `key`. */
  onClock?(ctx: OperatorContext<S, Out>, key: Key, time: number): void;
  /** After a recovery: set again the timers that a key's state implies. */
  rearm?(timers: Timers, key: Key, state: S): void;
  /**
   * Every value of the operator's state packs into this many numbers (an aggregate of counts,
   * sums, ...): the keyed state keeps them packed (src/state/keyed-state.ts).
   */
  readonly stateLayout?: NumericLayout<S>;
  /**
   * How far behind its watermark the step's outputs may be in event time (an outer join emits an
   * unmatched event only when the watermark has passed it): the watermark it passes on to the
   * steps that read it is held back by this much, so they do not see its outputs as late.
   */
  readonly watermarkDelayMs?: number;
}

/** An operator of any types, as the framework holds it. */
// deno-lint-ignore no-explicit-any
export type AnyOperator = Operator<any, any, any>;
