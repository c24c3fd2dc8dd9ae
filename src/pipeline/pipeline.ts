/**
 * The composition API: a pipeline is a typed dataflow graph of steps, each with a stable explicit
 * id (ids name KV keys and streams, so they never come from a step's position). Types flow from
 * the source's schema: the key type and the aggregate's row type are inferred, and a wrong field
 * name does not compile.
 *
 * @example
 * const p = pipeline("coffee-shop", { partitions: 8 });
 * p.source("orders", { stream: "orders", schema: Order })
 *   .keyBy("by-store", "store")
 *   .aggregate("revenue-by-store", (a) => ({ orders: a.count(), revenue: a.sum("qty") }))
 *   .toTable("revenue_by_store");
 */
import type { AnyStateMachine, ContextFrom, EmittedFrom, EventFromLogic, InputFrom, StateMachine, StateValueFrom } from "xstate";
import { ConfigError } from "../core/errors.ts";
import {
  type AggregateRow,
  type Aggregates,
  aggregates,
  type AggregateSpec,
  compileAggregate,
  type CompiledAggregate,
} from "./aggregate.ts";
import type { Key } from "../core/partition.ts";
import { tableBucket } from "../core/names.ts";
import { type EventSchema, SchemaDecoder } from "../core/schema.ts";

/** A step of the compiled graph. `input` names the step it reads from. */
export type Step =
  | {
    readonly kind: "source";
    readonly id: string;
    readonly stream: string;
    readonly subject: string | undefined;
    /** A source partitioned by subject: which token of `subject` (from 0) holds the partition. */
    readonly partitionToken: number | undefined;
    /** Read by one worker, which repartitions its events for the keyed steps (`SourceOptions.repartition`). */
    readonly repartition: boolean;
    /** The source's schema, ready to decode its events. */
    readonly schema: SchemaDecoder;
    readonly eventTime: ((value: unknown) => number) | undefined;
    readonly maxOutOfOrderMs: number;
    readonly idleTimeoutMs: number | undefined;
  }
  | { readonly kind: "map"; readonly id: string; readonly input: string; readonly fn: (value: unknown) => unknown }
  | { readonly kind: "filter"; readonly id: string; readonly input: string; readonly fn: (value: unknown) => boolean }
  | {
    readonly kind: "lookup";
    readonly id: string;
    readonly bucket: string;
    /** The table's schema, ready to decode its values. */
    readonly schema: SchemaDecoder;
  }
  | {
    readonly kind: "join";
    readonly id: string;
    readonly input: string;
    readonly lookup: string;
    readonly key: (value: unknown) => Key;
    readonly combine: (value: unknown, match: unknown) => unknown;
    readonly inner: boolean;
  }
  | { readonly kind: "keyBy"; readonly id: string; readonly input: string; readonly key: (value: unknown) => Key }
  | {
    readonly kind: "window";
    readonly id: string;
    readonly input: string;
    readonly window: { readonly size: number; readonly slide: number } | { readonly gap: number };
    readonly allowedLatenessMs: number;
    readonly emit: "final" | "updates";
  }
  | {
    readonly kind: "aggregate";
    readonly id: string;
    readonly input: string;
    readonly aggregate: CompiledAggregate<unknown>;
    /** Drop a key this long (event time) after its last event. */
    readonly ttlMs: number | undefined;
  }
  | {
    readonly kind: "streamJoin";
    readonly id: string;
    /** The left input's keyed step. */
    readonly input: string;
    /** The right input's keyed step. */
    readonly other: string;
    readonly join: JoinKind;
    readonly combine: (left: unknown, right: unknown) => unknown;
    /** Left outer: unmatched left events are emitted with `undefined`. */
    readonly outer: boolean;
  }
  /** The events a windowed aggregate (`input`) found too late: a stream later steps read. */
  | { readonly kind: "late"; readonly id: string; readonly input: string }
  | { readonly kind: "table"; readonly id: string; readonly input: string; readonly table: string }
  | {
    readonly kind: "stream";
    readonly id: string;
    readonly input: string;
    readonly stream: string;
    readonly subject: string;
    readonly batched: boolean;
  }
  | {
    readonly kind: "process";
    readonly id: string;
    readonly input: string;
    readonly machine: AnyStateMachine;
    /** Delays that run on the worker's clock; every other delay runs in event time. */
    readonly processingTime: readonly string[];
    /** The machine's input for a new key. */
    readonly machineInput: ((key: Key, first: unknown) => unknown) | undefined;
  }
  | { readonly kind: "dedup"; readonly id: string; readonly input: string; readonly withinMs: number };

/** How a join of two keyed streams pairs their events (actors/join.ts). */
export type JoinKind =
  | { readonly type: "regular"; readonly ttlMs?: number | undefined }
  | { readonly type: "interval"; readonly lowerMs: number; readonly upperMs: number }
  /** `semi`: each left event with a partner in its window, once, without the partner. */
  | { readonly type: "window"; readonly size: number; readonly semi?: true }
  | { readonly type: "asOf" };

export interface PipelineOptions {
  /** Partitions of every keyed step (fixed for the life of the pipeline's state). Default 8. */
  readonly partitions?: number;
  /** The pipeline's console page, served at `GET /` beside it (`eddy run --port`, `eddy dev`). */
  readonly dashboard?: Dashboard;
}

/**
 * A console page: one HTML document with its stylesheet and script inline, which reads the query
 * API (src/serve/api.ts) from the browser and fetches nothing from elsewhere. Built from browser
 * code by scripts/build-pages.ts, which writes it as a module exporting `html`.
 *
 * @example
 * import { html } from "./dashboard.generated.ts";
 * const p = pipeline("coffee-shop", { dashboard: { html } });
 */
export interface Dashboard {
  readonly html: string;
}

/** Where a sink to a JetStream stream writes. Eddy creates the stream when it is missing. */
export interface StreamSinkOptions {
  readonly stream: string;
  /** Subject to publish to; default `<stream>.<step id>`. */
  readonly subject?: string;
  /**
   * Send the records in batches, many to a message (JSON Lines; read them with `recordsOf`), not
   * one message each: for a stream of a source's events (map, filter), not of a keyed step's rows.
   * JetStream then stores one message per batch, which is what bounds a busy sink.
   */
  readonly batched?: boolean;
}

export interface SourceOptions<T> {
  /** The JetStream stream to read (it belongs to the user and must exist). */
  readonly stream: string;
  /** Optional subject filter within the stream, e.g. `orders.>`. */
  readonly subject?: string;
  /**
   * A stream partitioned by subject, the way nats-server's `partition()` mapping writes it: the
   * subjects with `{partition}` for the token that holds the partition, e.g. `orders.{partition}.>`.
   * The partition is that of the key of the keyBy that reads the source (FNV-1a over the key, modulo
   * the pipeline's partitions: `partitionOfKey`), so a worker reads only its partitions' subjects.
   * An event whose key belongs to another partition than its subject's is a dead letter.
   * Instead of `subject`.
   */
  readonly partitionSubject?: string;
  /**
   * A source you cannot partition by subject, read by many workers: one worker (the holder of
   * partition 0) reads it, takes each event through the stateless steps after it, and sends the
   * records to an edge with a subject per partition (Kafka Streams' repartition topic), which the
   * keyed steps' workers read their share of. Costs a write and a read of each event through
   * JetStream; results are the same as reading it directly. Default false: every worker holding
   * a partition reads the whole source.
   */
  readonly repartition?: boolean;
  /**
   * Each event is JSON decoded with this schema: any Standard Schema v1 (zod, valibot, arktype,
   * `Schema.standardSchemaV1(...)`) or an effect Schema; the stream's events are its output type.
   * Failures go to the dead-letter stream with the schema's issues. Its `validate` must be
   * synchronous.
   */
  readonly schema: EventSchema<T>;
  /** The event's time (epoch ms): needed by windows. */
  readonly eventTime?: (value: T) => number;
  /**
   * How far behind the highest event time seen an event may still arrive in order: the
   * watermark is the highest event time seen minus this. Default 0.
   */
  readonly maxOutOfOrderMs?: number;
  /**
   * After this long (processing time) without events, the source stops holding back the
   * watermark of the steps it feeds (with other inputs), until its next event. Default: never.
   */
  readonly idleTimeoutMs?: number;
}

/**
 * An event-time window: tumbling (`size`), hopping (`size` every `slide`), or a session (events
 * less than `gap` apart; its aggregates must be able to merge: not `reduce`).
 */
export type WindowSpec =
  & (
    | {
      readonly size: number;
      /** Default: `size` (tumbling). */
      readonly slide?: number;
    }
    | { readonly gap: number }
  )
  & {
    /** How long after its end a window still takes late events (and re-emits). Default 0. */
    readonly allowedLatenessMs?: number;
    /**
     * "final" (default): one row per window when it closes. "updates": the window's row at every
     * change (`final: false`), and once more when it closes (`final: true`). Not for sessions.
     */
    readonly emit?: "final" | "updates";
  };

/** A windowed aggregate's row: the key, the window, and one column per aggregate. */
export type WindowRow<K, Spec> = AggregateRow<K, Spec> & { readonly windowStart: number; readonly windowEnd: number };

/** A lookup table: a KV bucket of the user's, kept in memory, that streams join with. */
export interface Lookup<V> {
  readonly id: string;
  readonly bucket: string;
  /** Type-level only: the value type. */
  readonly value?: V;
}

export interface JoinOptions {
  /** "inner" (default) drops events without a match; "left" keeps them with `undefined`. */
  readonly kind?: "inner" | "left";
}

/** The string or number fields of T: what `keyBy` accepts by name. */
export type KeyField<T> = { [F in keyof T]-?: T[F] extends Key ? F : never }[keyof T] & string;

export interface Stream<T> {
  map<U>(id: string, fn: (value: T) => U): Stream<U>;
  filter<S extends T>(id: string, fn: (value: T) => value is S): Stream<S>;
  filter(id: string, fn: (value: T) => boolean): Stream<T>;
  keyBy<F extends KeyField<T>>(id: string, field: F): KeyedStream<T, Extract<T[F], Key>>;
  keyBy<K extends Key>(id: string, fn: (value: T) => K): KeyedStream<T, K>;
  /**
   * Join each event with a lookup table's value for its key, as the table is when the event is
   * processed. Inner by default: events without a match are dropped.
   */
  join<V, U>(id: string, table: Lookup<V>, key: KeyField<T> | ((value: T) => Key), combine: (value: T, match: V) => U): Stream<U>;
  join<V, U>(
    id: string,
    table: Lookup<V>,
    key: KeyField<T> | ((value: T) => Key),
    combine: (value: T, match: V | undefined) => U,
    options: { readonly kind: "left" },
  ): Stream<U>;
  /** Publish every event to a JetStream stream, each message with a deterministic Nats-Msg-Id. */
  toStream(id: string, options: StreamSinkOptions): void;
}

/** Left outer: a left event without a partner is emitted once, with `undefined`. */
export type OuterJoin = { readonly kind: "left" };

export interface KeyedStream<T, K extends Key> {
  /** The keyed step's id. */
  readonly id: string;
  /**
   * Every pair of this stream's and `other`'s events with the same key, emitted when the second
   * of the two arrives (inner). State holds every event: bound it with `ttlMs` (event time).
   */
  join<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    combine: (left: T, right: U) => R,
    options?: { readonly ttlMs?: number },
  ): Stream<R>;
  /**
   * Pairs whose times satisfy `left.time + lowerMs <= right.time <= left.time + upperMs`, e.g.
   * `{ lowerMs: 0, upperMs: 60_000 }`: the right event within a minute after the left one.
   */
  intervalJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    bounds: { readonly lowerMs: number; readonly upperMs: number; readonly kind?: "inner" },
    combine: (left: T, right: U) => R,
  ): Stream<R>;
  intervalJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    bounds: { readonly lowerMs: number; readonly upperMs: number } & OuterJoin,
    combine: (left: T, right: U | undefined) => R,
  ): Stream<R>;
  /** Pairs in the same tumbling event-time window, emitted when the watermark closes it. */
  windowJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    window: { readonly size: number; readonly kind?: "inner" },
    combine: (left: T, right: U) => R,
  ): Stream<R>;
  windowJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    window: { readonly size: number } & OuterJoin,
    combine: (left: T, right: U | undefined) => R,
  ): Stream<R>;
  /**
   * A semi join: each event of this stream that has a partner in `other` in its window, once
   * however many partners it has, when the watermark closes the window. The join keeps only that
   * a key's window has a partner, not `other`'s events (as SQL's `WHERE EXISTS`, or a join with
   * `other` grouped by key and window first).
   *
   * @example
   * persons.keyBy("by-id", "id")
   *   .windowJoin("sellers", auctions.keyBy("by-seller", "seller"), { size: 10_000, kind: "semi" }, (p) => p.name);
   */
  windowJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    window: { readonly size: number; readonly kind: "semi" },
    combine: (left: T) => R,
  ): Stream<R>;
  /**
   * A temporal join: each event with `other`'s latest event (version) at or before its time, once
   * the watermark has passed it. E.g. an order with the price valid when it was placed.
   */
  asOfJoin<U, R>(id: string, other: KeyedStream<U, K>, combine: (left: T, right: U) => R): Stream<R>;
  asOfJoin<U, R>(
    id: string,
    other: KeyedStream<U, K>,
    combine: (left: T, right: U | undefined) => R,
    options: OuterJoin,
  ): Stream<R>;
  /**
   * Keep aggregates per key. `ttlMs`: drop a key (and its table row) once the watermark is this
   * far past its last event (the source must declare event time).
   */
  aggregate<S extends AggregateSpec<T>>(
    id: string,
    spec: (a: Aggregates<T>) => S,
    options?: { readonly ttlMs?: number },
  ): Changelog<AggregateRow<K, S>>;
  /** Group by event-time windows (the source must declare `eventTime`). */
  window(id: string, spec: WindowSpec): WindowedStream<T, K>;
  /**
   * Run the user's own XState v5 machine per key: each key's machine takes the key's events (the
   * stream's values must be events of the machine: a compile error otherwise), and what it emits
   * (`emit(...)`) is the step's output. Delayed events (`after`, `raise(e, { delay })`) are timers
   * in event time (fired when the watermark passes them), or in processing time (the worker's
   * clock) for the delays named in `processingTime`. A key whose machine reaches a final state is
   * dropped. Snapshots and timers are part of the checkpoint (see actors/process.ts).
   *
   * @example
   * statuses.keyBy("by-order", "orderId")
   *   .process("lifecycle", orderMachine, { processingTime: ["remindAfter"] })
   *   .toStream("order-events", { stream: "order_events" });
   */
  process<M extends AnyStateMachine>(
    id: string,
    machine: M & EventsOf<T, M>,
    options?: ProcessOptions<T, K, M>,
  ): Processed<EmittedFrom<M>, ProcessRow<K, M>>;
  /**
   * Let the first event of a key through and drop its repeats: an event passes unless the last
   * one that passed for its key is less than `withinMs` away in event time (the source must
   * declare `eventTime`). A key's state expires `withinMs` after its last passing event, by the
   * watermark.
   */
  dedup(id: string, options: { readonly withinMs: number }): Stream<T>;
}

/** The names of a machine's delays (`setup({ delays })`). */
export type DelayOf<M> = M extends StateMachine<any, any, any, any, any, any, infer D, any, any, any, any, any, any, any>
  ? D & string
  : never;

/** `unknown` when the stream's values `T` are events of machine `M`; otherwise a type no machine has. */
export type EventsOf<T, M extends AnyStateMachine> = [T] extends [EventFromLogic<M>] ? unknown
  : { readonly "the stream's values are not events of this machine": T };

export interface ProcessOptions<T, K, M extends AnyStateMachine> {
  /**
   * Delays of the machine (names in its `setup({ delays })`) that run in processing time, on the
   * worker's clock: its `after` transitions with them, and delayed `raise`s whose `id` is the
   * name. Every other delay runs in event time.
   */
  readonly processingTime?: readonly DelayOf<M>[];
  /** The machine's input for a new key, from the key and its first event. */
  readonly input?: (key: K, first: T) => InputFrom<M>;
}

/** A process step's table row: the key, its machine's state value and context. */
export interface ProcessRow<K, M extends AnyStateMachine> {
  readonly key: K;
  readonly state: StateValueFrom<M>;
  readonly context: ContextFrom<M>;
}

/**
 * The outputs of a process step: a stream of the events its machines emit (each at the event
 * time of what caused it), and each key's machine as a table row.
 */
export interface Processed<E, R> extends Stream<E> {
  /** Upsert each key's row into result table `name`; a key whose machine is done leaves the table. */
  toTable(name: string): Table<R>;
  /** Type-level only: the emitted events' type. */
  readonly event?: E;
}

export interface WindowedStream<T, K extends Key> {
  /** One row per key and window, emitted once when the watermark passes the window's end. */
  aggregate<S extends AggregateSpec<T>>(id: string, spec: (a: Aggregates<T>) => S): WindowChangelog<WindowRow<K, S>, T>;
}

/**
 * The rows of a windowed step, final when emitted (re-emitted only for late events). They are a
 * stream too, in event time (a row's time is its window's end - 1): later steps can map, filter
 * and key them again, e.g. the largest per-window count over all keys. Each such step runs in
 * its own actors, reading the rows from an internal stream (an edge).
 */
export interface WindowChangelog<R, T = unknown> extends Stream<R> {
  /** Upsert each emitted window's row into result table `name`, keyed `<key>|<windowStart>`. */
  toTable(name: string): Table<R>;
  /**
   * The events that came too late for their windows (they also go to the late-events stream
   * `eddy-late-<pipeline>` with the reason), as a stream, e.g. to count late orders per store.
   */
  lateEvents(id: string): Stream<T>;
  /** Type-level only: the row type. */
  readonly row?: R;
}

/** The rows of a keyed step: each update is the key's new row. */
export interface Changelog<R> {
  /** Upsert rows into the result table `name` (one KV bucket); same-key updates are coalesced. */
  toTable(name: string): Table<R>;
  /** Publish every update to a JetStream stream, with deterministic Nats-Msg-Ids. */
  toStream(id: string, options: StreamSinkOptions): void;
  /**
   * Group the rows again, e.g. per-item revenue by category. An aggregate over them follows
   * every update: a row's previous version is taken back out (retracted) and its new one added.
   */
  keyBy<F extends KeyField<R>>(id: string, field: F): UpdatingKeyedStream<R, Extract<R[F], Key>>;
  keyBy<K extends Key>(id: string, fn: (row: R) => K): UpdatingKeyedStream<R, K>;
}

/** The rows of an updating step, keyed again. */
export interface UpdatingKeyedStream<T, K extends Key> {
  /**
   * Aggregates over the current rows of each key: count, sum, avg, min, max and topN (which can
   * take a row back out), not `reduce`.
   */
  aggregate<S extends AggregateSpec<T>>(id: string, spec: (a: Aggregates<T>) => S): Changelog<AggregateRow<K, S>>;
}

/** A result table, by name; `Row` is the type of its rows, for readers. */
export interface Table<R> {
  readonly name: string;
  readonly bucket: string;
  /** Type-level only: the row type. */
  readonly row?: R;
}

const idPattern = /^[A-Za-z0-9_-]+$/;

/** A pipeline: an id (it names the pipeline's state bucket) and its steps. */
export class Pipeline {
  readonly #steps = new Map<string, Step>();
  readonly partitions: number;
  /** Its console page, if it has one (PipelineOptions.dashboard). */
  readonly dashboard: Dashboard | undefined;

  constructor(
    readonly id: string,
    options: PipelineOptions = {},
  ) {
    checkId("pipeline", id);
    this.partitions = options.partitions ?? 8;
    this.dashboard = options.dashboard;
    if (!Number.isInteger(this.partitions) || this.partitions < 1 || this.partitions > 4096) {
      throw new ConfigError({
        message: `pipeline "${id}": partitions must be an integer from 1 to 4096, got ${options.partitions}`,
        hint: "pass e.g. { partitions: 8 }",
      });
    }
  }

  get steps(): readonly Step[] {
    return [...this.#steps.values()];
  }

  step(id: string): Step {
    const step = this.#steps.get(id);
    if (!step) throw new Error(`no step "${id}" in pipeline "${this.id}"`);
    return step;
  }

  source<T>(id: string, options: SourceOptions<T>): Stream<T> {
    const lateness = options.maxOutOfOrderMs ?? 0;
    if (options.idleTimeoutMs !== undefined && !(options.idleTimeoutMs > 0)) {
      throw new ConfigError({
        message: `source "${id}": idleTimeoutMs must be > 0, got ${options.idleTimeoutMs}`,
        hint: "e.g. { idleTimeoutMs: 10_000 }, or leave it out",
      });
    }
    if (!(lateness >= 0)) {
      throw new ConfigError({
        message: `source "${id}": maxOutOfOrderMs must be >= 0, got ${lateness}`,
        hint: "e.g. { maxOutOfOrderMs: 2000 }",
      });
    }
    let subject = options.subject;
    let partitionToken: number | undefined;
    if (options.repartition && options.partitionSubject !== undefined) {
      throw new ConfigError({
        message: `source "${id}": a source partitioned by subject needs no repartition`,
        hint: "drop repartition: true (each worker already reads only its partitions' subjects)",
      });
    }
    if (options.partitionSubject !== undefined) {
      const tokens = options.partitionSubject.split(".");
      partitionToken = tokens.indexOf("{partition}");
      if (options.subject !== undefined || partitionToken < 0 || tokens.lastIndexOf("{partition}") !== partitionToken) {
        throw new ConfigError({
          message: options.subject !== undefined
            ? `source "${id}": give subject or partitionSubject, not both`
            : `source "${id}": partitionSubject "${options.partitionSubject}" needs exactly one {partition} token`,
          hint: 'e.g. { partitionSubject: "orders.{partition}.>" }, for subjects like orders.3.store-1',
        });
      }
      tokens[partitionToken] = "*";
      subject = tokens.join(".");
    }
    this.#add({
      kind: "source",
      id,
      stream: options.stream,
      subject,
      partitionToken,
      repartition: options.repartition ?? false,
      schema: SchemaDecoder.of(`source "${id}"`, options.schema) as SchemaDecoder,
      eventTime: options.eventTime as ((value: unknown) => number) | undefined,
      maxOutOfOrderMs: lateness,
      idleTimeoutMs: options.idleTimeoutMs,
    });
    return this.#stream<T>(id);
  }

  #add(step: Step): void {
    checkId("step", step.id);
    if (this.#steps.has(step.id)) {
      throw new ConfigError({
        message: `pipeline "${this.id}" has two steps with id "${step.id}"`,
        hint: "give every step its own id: ids name state keys and streams",
      });
    }
    this.#steps.set(step.id, step);
  }

  /**
   * A lookup table: a KV bucket (key to JSON value, decoded with `schema`: any Standard Schema v1,
   * or an effect Schema) that streams join with.
   */
  lookup<V>(id: string, options: { readonly bucket: string; readonly schema: EventSchema<V> }): Lookup<V> {
    this.#add({
      kind: "lookup",
      id,
      bucket: options.bucket,
      schema: SchemaDecoder.of(`lookup table "${id}"`, options.schema) as SchemaDecoder,
    });
    return { id, bucket: options.bucket };
  }

  /**
   * The stream of step `input`'s outputs. `updating`: they may update earlier ones (a window's rows,
   * re-emitted for late events or emitted early), so an aggregate after a keyBy retracts.
   */
  #stream<T>(input: string, updating = false): Stream<T> {
    const add = (step: Step) => this.#add(step);
    const stream = <U>(id: string) => this.#stream<U>(id);
    const keyed = <K extends Key>(id: string) => this.#keyed<T, K>(id, updating);
    return {
      map(id, fn) {
        add({ kind: "map", id, input, fn: fn as (value: unknown) => unknown });
        return stream(id);
      },
      filter(id: string, fn: (value: T) => boolean) {
        add({ kind: "filter", id, input, fn: fn as (value: unknown) => boolean });
        return stream<T>(id);
      },
      keyBy(id: string, by: string | ((value: T) => Key)) {
        add({ kind: "keyBy", id, input, key: keyOf(by) });
        return keyed(id);
      },
      join(
        id: string,
        table: Lookup<unknown>,
        by: string | ((value: T) => Key),
        combine: (value: T, match: unknown) => unknown,
        options?: JoinOptions,
      ) {
        add({
          kind: "join",
          id,
          input,
          lookup: table.id,
          key: keyOf(by),
          combine: combine as (value: unknown, match: unknown) => unknown,
          inner: (options?.kind ?? "inner") === "inner",
        });
        return stream(id);
      },
      toStream(id, options) {
        add(streamSink(id, input, options));
      },
    } as Stream<T>;
  }

  #join(
    id: string,
    left: string,
    other: { readonly id: string },
    join: JoinKind,
    combine: (left: unknown, right: unknown) => unknown,
    outer: boolean,
    // biome-ignore lint: typed by the public overloads
  ): Stream<any> {
    if (this.step(other.id).kind !== "keyBy") {
      throw new ConfigError({ message: `join "${id}": "${other.id}" is not a keyed stream`, hint: "pass a keyBy(...) result" });
    }
    if (join.type !== "regular" || join.ttlMs !== undefined) {
      for (const side of [left, other.id]) {
        if (!this.#hasEventTime(side)) {
          throw new ConfigError({
            message: `join "${id}" pairs events by event time, and "${side}" has none`,
            hint: "declare eventTime on the source of each side",
          });
        }
      }
    }
    const check = (ok: boolean, what: string) => {
      if (!ok) throw new ConfigError({ message: `join "${id}": ${what}`, hint: "see the join's documentation for its bounds" });
    };
    if (join.type === "interval") check(join.lowerMs <= join.upperMs, `lowerMs ${join.lowerMs} > upperMs ${join.upperMs}`);
    if (join.type === "window") check(join.size > 0, `window size ${join.size} is not > 0`);
    if (join.type === "regular") check(join.ttlMs === undefined || join.ttlMs > 0, `ttlMs ${join.ttlMs} is not > 0`);
    this.#add({ kind: "streamJoin", id, input: left, other: other.id, join, combine, outer });
    return this.#stream(id);
  }

  #keyed<T, K extends Key>(input: string, updating = false): KeyedStream<T, K> {
    type Other = { readonly id: string };
    // biome-ignore lint: the public overloads type the combine function; here it is plain data
    type Combine = (left: any, right: any) => unknown;
    const outer = (o?: { readonly kind?: string }) => o?.kind === "left";
    return {
      id: input,
      join: (id: string, other: Other, combine: Combine, options?: { readonly ttlMs?: number }) =>
        this.#join(id, input, other, { type: "regular", ttlMs: options?.ttlMs }, combine, false),
      intervalJoin: (id: string, other: Other, b: { lowerMs: number; upperMs: number; kind?: string }, combine: Combine) =>
        this.#join(id, input, other, { type: "interval", lowerMs: b.lowerMs, upperMs: b.upperMs }, combine, outer(b)),
      windowJoin: (id: string, other: Other, w: { size: number; kind?: string }, combine: Combine) =>
        this.#join(
          id,
          input,
          other,
          { type: "window", size: w.size, ...(w.kind === "semi" ? { semi: true } : {}) },
          combine,
          outer(w),
        ),
      asOfJoin: (id: string, other: Other, combine: Combine, options?: OuterJoin) =>
        this.#join(id, input, other, { type: "asOf" }, combine, outer(options)),
      aggregate: <S extends AggregateSpec<T>>(
        id: string,
        spec: (a: Aggregates<T>) => S,
        options?: { readonly ttlMs?: number },
      ) => {
        const ttlMs = options?.ttlMs;
        if (ttlMs !== undefined) {
          if (!(ttlMs > 0)) {
            throw new ConfigError({
              message: `aggregate "${id}": ttlMs must be > 0, got ${ttlMs}`,
              hint: "e.g. { ttlMs: 3_600_000 }",
            });
          }
          if (!this.#hasEventTime(input)) {
            throw new ConfigError({
              message: `aggregate "${id}": a state TTL needs event time`,
              hint: "declare eventTime on the pipeline's source",
            });
          }
        }
        this.#aggregate(id, input, spec, ttlMs, updating);
        return this.#changelog<AggregateRow<K, S>>(id);
      },
      window: (id, spec) => {
        const allowedLatenessMs = spec.allowedLatenessMs ?? 0;
        let window: { size: number; slide: number } | { gap: number };
        if ("gap" in spec) {
          if (!(spec.gap > 0 && allowedLatenessMs >= 0)) {
            throw new ConfigError({
              message: `window "${id}": gap ${spec.gap}, allowed lateness ${allowedLatenessMs} do not make a session window`,
              hint: "gap > 0; allowedLatenessMs >= 0",
            });
          }
          window = { gap: spec.gap };
          if (spec.emit === "updates") {
            throw new ConfigError({
              message: `window "${id}": sessions emit final rows only`,
              hint: 'drop emit: "updates" or use a fixed window',
            });
          }
        } else {
          const slide = spec.slide ?? spec.size;
          if (!(spec.size > 0 && slide > 0 && slide <= spec.size && spec.size % slide === 0 && allowedLatenessMs >= 0)) {
            throw new ConfigError({
              message:
                `window "${id}": size ${spec.size}, slide ${slide}, allowed lateness ${allowedLatenessMs} do not make a window`,
              hint: "size > 0; slide > 0, at most size and dividing it; allowedLatenessMs >= 0",
            });
          }
          window = { size: spec.size, slide };
        }
        if (!this.#hasEventTime(input)) {
          throw new ConfigError({
            message: `window "${id}" needs event time`,
            hint: "declare eventTime (and maxOutOfOrderMs) on the pipeline's source",
          });
        }
        this.#add({ kind: "window", id, input, window, allowedLatenessMs, emit: spec.emit ?? "final" });
        return {
          aggregate: <S extends AggregateSpec<T>>(aggId: string, aggSpec: (a: Aggregates<T>) => S) => {
            const compiled = this.#aggregate(aggId, id, aggSpec);
            if ("gap" in window && !compiled.mergeable) {
              throw new ConfigError({
                message: `aggregate "${aggId}" cannot run in session window "${id}": sessions merge, and a reduce cannot`,
                hint: "use count, sum, min, max and avg in session windows",
              });
            }
            return {
              ...this.#changelog(aggId),
              ...this.#stream(aggId, true), // keyBy: every keyed step, with aggregates that retract
              lateEvents: (lateId: string) => {
                this.#add({ kind: "late", id: lateId, input: aggId });
                return this.#stream(lateId);
              },
            } as WindowChangelog<WindowRow<K, S>, T>;
          },
        };
      },
      process: <M extends AnyStateMachine>(id: string, machine: M, options?: ProcessOptions<T, K, M>) => {
        this.#add({
          kind: "process",
          id,
          input,
          machine,
          processingTime: options?.processingTime ?? [],
          machineInput: options?.input as ((key: Key, first: unknown) => unknown) | undefined,
        });
        return { ...this.#stream<EmittedFrom<M>>(id), toTable: this.#changelog<ProcessRow<K, M>>(id).toTable };
      },
      dedup: (id, options) => {
        if (!(options.withinMs > 0)) {
          throw new ConfigError({
            message: `dedup "${id}": withinMs must be > 0, got ${options.withinMs}`,
            hint: "e.g. { withinMs: 60_000 }",
          });
        }
        if (!this.#hasEventTime(input)) {
          throw new ConfigError({
            message: `dedup "${id}" needs event time`,
            hint: "declare eventTime (and maxOutOfOrderMs) on the pipeline's source",
          });
        }
        this.#add({ kind: "dedup", id, input, withinMs: options.withinMs });
        return this.#stream<T>(id);
      },
    };
  }

  #aggregate<T>(
    id: string,
    input: string,
    spec: (a: Aggregates<T>) => AggregateSpec<T>,
    ttlMs?: number,
    updating = false,
  ): CompiledAggregate<T> {
    const compiled = compileAggregate(spec(aggregates<T>()), updating);
    if (compiled.columns.length === 0) {
      throw new ConfigError({ message: `aggregate "${id}" has no columns`, hint: "return e.g. { orders: a.count() }" });
    }
    this.#add({ kind: "aggregate", id, input, aggregate: compiled as CompiledAggregate<unknown>, ttlMs });
    return compiled;
  }

  /** Whether the events of step `id` have an event time. */
  #hasEventTime(id: string): boolean {
    const step = this.step(id);
    switch (step.kind) {
      case "source":
        return step.eventTime !== undefined;
      case "lookup":
        return false;
      case "streamJoin":
        return this.#hasEventTime(step.input) && this.#hasEventTime(step.other);
      case "aggregate":
        // A window's rows have event time (their window's end - 1).
        return this.step(step.input).kind === "window" || this.#hasEventTime(step.input);
      default:
        return this.#hasEventTime(step.input);
    }
  }

  #changelog<R>(input: string): Changelog<R> {
    return {
      keyBy: (id: string, by: string | ((row: R) => Key)) => {
        this.#add({ kind: "keyBy", id, input, key: keyOf(by) });
        return {
          aggregate: <S extends AggregateSpec<R>>(aggId: string, spec: (a: Aggregates<R>) => S) => {
            this.#aggregate(aggId, id, spec, undefined, true);
            return this.#changelog<AggregateRow<Key, S>>(aggId);
          },
        } as UpdatingKeyedStream<R, Key>;
      },
      toTable: (name: string) => {
        this.#add({ kind: "table", id: name, input, table: name });
        return { name, bucket: tableBucket(name) };
      },
      toStream: (id: string, options: StreamSinkOptions) => {
        this.#add(streamSink(id, input, options));
      },
    } as Changelog<R>;
  }
}

function streamSink(id: string, input: string, options: StreamSinkOptions): Step {
  const { stream, subject = `${stream}.${id}`, batched = false } = options;
  return { kind: "stream", id, input, stream, subject, batched };
}

function keyOf<T>(by: string | ((value: T) => Key)): (value: unknown) => Key {
  return (typeof by === "function" ? by : (value: T) => (value as Record<string, Key>)[by]!) as (value: unknown) => Key;
}

function checkId(what: string, id: string): void {
  if (!idPattern.test(id)) {
    throw new ConfigError({
      message: `${what} id "${id}" is not allowed`,
      hint: "use letters, digits, '-' and '_' only: ids name KV keys, buckets and streams",
    });
  }
}

/** Start a pipeline definition. */
export function pipeline(id: string, options?: PipelineOptions): Pipeline {
  return new Pipeline(id, options);
}
