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
import type { Schema } from "effect";
import type { AnyStateMachine, ContextFrom, EmittedFrom, EventFromLogic, InputFrom, StateMachine, StateValueFrom } from "xstate";
import { ConfigError } from "../errors.ts";
import {
  type AggregateRow,
  type Aggregates,
  aggregates,
  type AggregateSpec,
  compileAggregate,
  type CompiledAggregate,
} from "./aggregate.ts";
import type { Key } from "./partition.ts";

/** A step of the compiled graph. `input` names the step it reads from. */
export type Step =
  | {
    readonly kind: "source";
    readonly id: string;
    readonly stream: string;
    readonly subject: string | undefined;
    readonly schema: Schema.Schema<unknown, unknown>;
    readonly eventTime: ((value: unknown) => number) | undefined;
    readonly maxOutOfOrderMs: number;
  }
  | { readonly kind: "map"; readonly id: string; readonly input: string; readonly fn: (value: unknown) => unknown }
  | { readonly kind: "filter"; readonly id: string; readonly input: string; readonly fn: (value: unknown) => boolean }
  | {
    readonly kind: "lookup";
    readonly id: string;
    readonly bucket: string;
    readonly schema: Schema.Schema<unknown, unknown>;
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
  | { readonly kind: "table"; readonly id: string; readonly input: string; readonly table: string }
  | {
    readonly kind: "stream";
    readonly id: string;
    readonly input: string;
    readonly stream: string;
    readonly subject: string;
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

export interface PipelineOptions {
  /** Partitions of every keyed step (fixed for the life of the pipeline's state). Default 8. */
  readonly partitions?: number;
}

/** Where a sink to a JetStream stream writes. Eddy creates the stream when it is missing. */
export interface StreamSinkOptions {
  readonly stream: string;
  /** Subject to publish to; default `<stream>.<step id>`. */
  readonly subject?: string;
}

export interface SourceOptions<T, I> {
  /** The JetStream stream to read (it belongs to the user and must exist). */
  readonly stream: string;
  /** Optional subject filter within the stream, e.g. `orders.>`. */
  readonly subject?: string;
  /** Each event is JSON decoded with this effect Schema; failures go to the dead-letter stream. */
  readonly schema: Schema.Schema<T, I>;
  /** The event's time (epoch ms): needed by windows. */
  readonly eventTime?: (value: T) => number;
  /**
   * How far behind the highest event time seen an event may still arrive in order: the
   * watermark is the highest event time seen minus this. Default 0.
   */
  readonly maxOutOfOrderMs?: number;
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

export interface KeyedStream<T, K extends Key> {
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
  dedup(id: string, options: { readonly withinMs: number }): Deduplicated<T>;
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

/** The outputs of a process step: the events its machines emit, and each key's machine as a row. */
export interface Processed<E, R> {
  /** Upsert each key's row into result table `name`; a key whose machine is done leaves the table. */
  toTable(name: string): Table<R>;
  /** Publish every emitted event to a JetStream stream, with deterministic Nats-Msg-Ids. */
  toStream(id: string, options: StreamSinkOptions): void;
  /** Type-level only: the emitted events' type. */
  readonly event?: E;
}

/** The events a dedup step lets through. */
export interface Deduplicated<T> {
  /** Publish every event that passes to a JetStream stream, with deterministic Nats-Msg-Ids. */
  toStream(id: string, options: StreamSinkOptions): void;
  /** Type-level only: the events' type. */
  readonly value?: T;
}

export interface WindowedStream<T, K extends Key> {
  /** One row per key and window, emitted once when the watermark passes the window's end. */
  aggregate<S extends AggregateSpec<T>>(id: string, spec: (a: Aggregates<T>) => S): WindowChangelog<WindowRow<K, S>>;
}

/** The rows of a windowed step, final when emitted (re-emitted only for late events). */
export interface WindowChangelog<R> {
  /** Upsert each emitted window's row into result table `name`, keyed `<key>|<windowStart>`. */
  toTable(name: string): Table<R>;
  /** Publish each window's row to a JetStream stream, with deterministic Nats-Msg-Ids. */
  toStream(id: string, options: StreamSinkOptions): void;
  /** Type-level only: the row type. */
  readonly row?: R;
}

/** The rows of a keyed step: each update is the key's new row. */
export interface Changelog<R> {
  /** Upsert rows into the result table `name` (one KV bucket); same-key updates are coalesced. */
  toTable(name: string): Table<R>;
  /** Publish every update to a JetStream stream, with deterministic Nats-Msg-Ids. */
  toStream(id: string, options: StreamSinkOptions): void;
}

/** A result table, by name; `Row` is the type of its rows, for readers. */
export interface Table<R> {
  readonly name: string;
  readonly bucket: string;
  /** Type-level only: the row type. */
  readonly row?: R;
}

const idPattern = /^[A-Za-z0-9_-]+$/;

/** The KV bucket holding result table `name`. */
export function tableBucket(name: string): string {
  return `eddy-table-${name}`;
}

/** A pipeline: an id (it names the pipeline's state bucket) and its steps. */
export class Pipeline {
  readonly #steps = new Map<string, Step>();
  readonly partitions: number;

  constructor(
    readonly id: string,
    options: PipelineOptions = {},
  ) {
    checkId("pipeline", id);
    this.partitions = options.partitions ?? 8;
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

  source<T, I>(id: string, options: SourceOptions<T, I>): Stream<T> {
    const lateness = options.maxOutOfOrderMs ?? 0;
    if (!(lateness >= 0)) {
      throw new ConfigError({
        message: `source "${id}": maxOutOfOrderMs must be >= 0, got ${lateness}`,
        hint: "e.g. { maxOutOfOrderMs: 2000 }",
      });
    }
    this.#add({
      kind: "source",
      id,
      stream: options.stream,
      subject: options.subject,
      schema: options.schema as unknown as Schema.Schema<unknown, unknown>,
      eventTime: options.eventTime as ((value: unknown) => number) | undefined,
      maxOutOfOrderMs: lateness,
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

  /** A lookup table: a KV bucket (key to JSON value, decoded with `schema`) that streams join with. */
  lookup<V, I>(id: string, options: { readonly bucket: string; readonly schema: Schema.Schema<V, I> }): Lookup<V> {
    this.#add({
      kind: "lookup",
      id,
      bucket: options.bucket,
      schema: options.schema as unknown as Schema.Schema<unknown, unknown>,
    });
    return { id, bucket: options.bucket };
  }

  #stream<T>(input: string): Stream<T> {
    const add = (step: Step) => this.#add(step);
    const stream = <U>(id: string) => this.#stream<U>(id);
    const keyed = <K extends Key>(id: string) => this.#keyed<T, K>(id);
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
        add({ kind: "stream", id, input, stream: options.stream, subject: options.subject ?? `${options.stream}.${id}` });
      },
    } as Stream<T>;
  }

  #keyed<T, K extends Key>(input: string): KeyedStream<T, K> {
    return {
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
          if (!this.#sourceOf(input).eventTime) {
            throw new ConfigError({
              message: `aggregate "${id}": a state TTL needs event time`,
              hint: "declare eventTime on the pipeline's source",
            });
          }
        }
        this.#aggregate(id, input, spec, ttlMs);
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
        if (!this.#sourceOf(input).eventTime) {
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
            return this.#changelog(aggId);
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
        return this.#changelog(id);
      },
      dedup: (id, options) => {
        if (!(options.withinMs > 0)) {
          throw new ConfigError({
            message: `dedup "${id}": withinMs must be > 0, got ${options.withinMs}`,
            hint: "e.g. { withinMs: 60_000 }",
          });
        }
        if (!this.#sourceOf(input).eventTime) {
          throw new ConfigError({
            message: `dedup "${id}" needs event time`,
            hint: "declare eventTime (and maxOutOfOrderMs) on the pipeline's source",
          });
        }
        this.#add({ kind: "dedup", id, input, withinMs: options.withinMs });
        return { toStream: this.#changelog(id).toStream };
      },
    };
  }

  #aggregate<T>(id: string, input: string, spec: (a: Aggregates<T>) => AggregateSpec<T>, ttlMs?: number): CompiledAggregate<T> {
    const compiled = compileAggregate(spec(aggregates<T>()));
    if (compiled.columns.length === 0) {
      throw new ConfigError({ message: `aggregate "${id}" has no columns`, hint: "return e.g. { orders: a.count() }" });
    }
    this.#add({ kind: "aggregate", id, input, aggregate: compiled as CompiledAggregate<unknown>, ttlMs });
    return compiled;
  }

  #sourceOf(id: string): Extract<Step, { kind: "source" }> {
    const step = this.step(id);
    if (step.kind === "source") return step;
    if (step.kind === "lookup") throw new Error(`lookup "${id}" is not part of a stream`);
    return this.#sourceOf(step.input);
  }

  #changelog<R>(input: string): Changelog<R> {
    return {
      toTable: (name) => {
        this.#add({ kind: "table", id: name, input, table: name });
        return { name, bucket: tableBucket(name) };
      },
      toStream: (id, options) => {
        this.#add({ kind: "stream", id, input, stream: options.stream, subject: options.subject ?? `${options.stream}.${id}` });
      },
    };
  }
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
