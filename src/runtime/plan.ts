/**
 * The plan: what a pipeline definition becomes when it runs. Stateless steps (map, filter, keyBy)
 * are chained into their source's reader, like Flink's operator chaining; every keyed step and
 * every sink of an unkeyed stream is an operator actor per partition. A router walks each decoded
 * event through the chain and drops it into the buffer of the actor that owns its key.
 *
 * @example
 * const plan = compile(p);
 * const router = buildRouter(plan.sources[0], plan, { buffer, fail });
 */
import { Either } from "effect";
import { aggregateOperator, aggregateRows } from "../../actors/aggregate.ts";
import { dedupOperator } from "../../actors/dedup.ts";
import type { EdgePlan } from "../../actors/edge-output.ts";
import { joinOperator } from "../../actors/join.ts";
import type { AnyOperator, Rec } from "../../actors/operator.ts";
import type { StreamSinkPlan } from "../../actors/outputs.ts";
import { processLogic, processOperator, processRows } from "../../actors/process.ts";
import { streamSinkOperator } from "../../actors/stream-sink.ts";
import type { TableRows } from "../../actors/table-writer.ts";
import { windowOperator, windowRows } from "../../actors/window.ts";
import { ConfigError } from "../core/errors.ts";
import { type Key, keyHash, partitionOf } from "../core/partition.ts";
import type { Pipeline, Step } from "../pipeline/pipeline.ts";
import { edgeStream } from "../core/names.ts";
import type { SchemaDecoder } from "../core/schema.ts";
import { sourceDecoder } from "./source-decoding.ts";

export interface ActorPlan {
  readonly step: string;
  readonly partitions: number;
  /** A new operator instance (one per actor: an operator may keep timers beside its state). */
  readonly createOperator: () => AnyOperator;
  readonly tables: readonly string[];
  /** Where its table rows come from (when it has tables). */
  // deno-lint-ignore no-explicit-any
  readonly rows?: TableRows<any, any>;
  readonly streams: readonly StreamSinkPlan[];
  /** Sources whose events reach this step. */
  readonly sources: readonly string[];
  /** A windowed step: its table rows are keyed `<key>|<windowStart>`. */
  readonly windowed: boolean;
  /** Later steps read this one: its outputs go to the edge stream `edge.stream`. */
  readonly edge?: EdgeStream;
  /** Later steps read the events this (windowed) step found late: its `late` step's edge. */
  readonly lateEdge?: EdgeStream;
}

/** The stream of an edge (named after the step it is out of), and the subjects it holds. */
export interface EdgeStream {
  readonly id: string;
  readonly stream: string;
  readonly subject: string;
}

export interface SourcePlan {
  readonly id: string;
  readonly stream: string;
  readonly subject: string | undefined;
  /** A source partitioned by subject: which token of `subject` holds the partition (src/pipeline/pipeline.ts). */
  readonly partitionToken?: number | undefined;
  /** A source read for the actor of step `direct` alone (a repartitioned source's): its events go to it unrouted. */
  readonly direct?: string;
  readonly decode: (data: Uint8Array) => Either.Either<unknown, string>;
  readonly eventTime: ((value: unknown) => number) | undefined;
  readonly maxOutOfOrderMs: number;
  /** Idle this long, the source stops holding watermarks back (`Batch.idle`). */
  readonly idleTimeoutMs?: number | undefined;
  /**
   * An edge: the outputs of a keyed step (`id`) that later steps read, from its internal stream,
   * as records its writers routed (src/runtime/plan.ts `edgePlan`): `partitions` read it, `writers`
   * write it (1: a repartitioned source's). Its watermark is the lowest over the writing
   * partitions'; `updating`: its rows are versions of rows (each replaces the previous one of its
   * key).
   */
  readonly edge?: { readonly partitions: number; readonly writers: number; readonly updating: boolean };
}

/** A change of an updating input: the row's previous version and its new one (either may be absent). */
export interface Change {
  readonly before: unknown;
  readonly after: unknown;
}

export interface Plan {
  readonly pipelineId: string;
  /** The partitions of every keyed step (the pipeline's). */
  readonly partitions: number;
  readonly sources: readonly SourcePlan[];
  readonly actors: readonly ActorPlan[];
  readonly tables: readonly string[];
  /** Streams Eddy writes to (created when missing). */
  readonly sinkStreams: readonly { readonly stream: string; readonly subject: string }[];
  /** Lookup tables the stateless chains join with. */
  readonly lookups: readonly { readonly id: string; readonly bucket: string; readonly schema: SchemaDecoder }[];
  readonly steps: ReadonlyMap<string, Step>;
  readonly children: ReadonlyMap<string, readonly Step[]>;
}

const decoder = new TextDecoder();

export function compile(pipeline: Pipeline): Plan {
  const steps = new Map(pipeline.steps.map((s) => [s.id, s] as const));
  const children = new Map<string, Step[]>();
  for (const step of steps.values()) {
    if (step.kind === "source" || step.kind === "lookup") continue;
    if (step.kind === "join" && steps.get(step.lookup)?.kind !== "lookup") {
      throw new ConfigError({
        message: `join "${step.id}" names "${step.lookup}", which is not a lookup table of this pipeline`,
        hint: "pass the value p.lookup(...) returned",
      });
    }
    if (!steps.has(step.input)) throw new Error(`step "${step.id}" reads unknown step "${step.input}"`);
    children.set(step.input, [...(children.get(step.input) ?? []), step]);
    if (step.kind === "streamJoin") children.set(step.other, [...(children.get(step.other) ?? []), step]);
  }
  // Edges: keyed steps whose outputs later steps read (not only sinks).
  const edges = new Set<string>();
  for (const step of steps.values()) {
    if (!keyedStep(step)) continue;
    if (!(children.get(step.id) ?? []).some((c) => c.kind !== "table" && c.kind !== "stream" && c.kind !== "late")) continue;
    const input = steps.get(step.input)!;
    if (input.kind === "window" && input.emit === "updates") {
      throw new ConfigError({
        message: `steps read the rows of "${step.id}", whose window "${input.id}" emits early updates`,
        hint: 'read the final rows (emit: "final"), or send the updates to a table or a stream only',
      });
    }
    edges.add(step.id);
  }
  /** A step's rows are versions of rows (a key's new row replaces its previous one). */
  const updating = (step: Step) => step.kind === "aggregate" && steps.get(step.input)!.kind !== "window";
  /** The sources a step's input comes from: real sources, or the edges of earlier steps. */
  const sourceOf = (id: string): string[] => {
    const step = steps.get(id)!;
    if (step.kind === "lookup") return [];
    if (step.kind === "source" || step.kind === "late" || edges.has(step.id)) return [step.id];
    return sourceOf(step.input);
  };
  /**
   * The stream sinks of keyed step `id`, which its own actors feed. They send a record per message:
   * a keyed step also emits outside of its inputs (timers), where no input range holds the output.
   */
  const streamSinksOf = (id: string): StreamSinkPlan[] =>
    (children.get(id) ?? []).flatMap((s) => {
      if (s.kind !== "stream") return [];
      if (s.batched) {
        throw new ConfigError({
          message: `stream sink "${s.id}" is batched, but reads the outputs of keyed step "${id}"`,
          hint: "batch the records of a source's events (map, filter), or drop batched: true",
        });
      }
      return [{ id: s.id, stream: s.stream, subject: s.subject }];
    });
  /**
   * The actors of keyed step `step`, one per partition: its sinks are its table and stream steps,
   * and when later steps read its outputs, they go to its edge, which becomes a source.
   */
  const addKeyedActor = (
    step: Step,
    plan: Pick<ActorPlan, "createOperator" | "rows" | "sources" | "windowed" | "lateEdge">,
  ): void => {
    const edge = edges.has(step.id) ? { id: step.id, ...edgeStream(pipeline.id, step.id) } : undefined;
    actors.push({
      step: step.id,
      partitions: pipeline.partitions,
      tables: (children.get(step.id) ?? []).flatMap((s) => (s.kind === "table" ? [s.table] : [])),
      streams: streamSinksOf(step.id),
      ...plan,
      ...(edge ? { edge } : {}),
    });
    if (edge) sources.push(edgeSource(step.id, updating(step)));
  };
  /** The edge source reading the outputs of keyed step `id` (written by `writers` partitions of it). */
  const edgeSource = (id: string, updating: boolean, writers = pipeline.partitions): SourcePlan => ({
    id,
    ...edgeStream(pipeline.id, id),
    eventTime: undefined,
    maxOutOfOrderMs: 0,
    edge: { partitions: pipeline.partitions, writers, updating },
    decode(data) {
      try {
        return Either.right(JSON.parse(decoder.decode(data)));
      } catch (error) {
        return Either.left(`not JSON: ${(error as Error).message}`);
      }
    },
  });
  const lookups = [...steps.values()].flatMap((
    s,
  ) => (s.kind === "lookup" ? [{ id: s.id, bucket: s.bucket, schema: s.schema }] : []));
  const sources: SourcePlan[] = [];
  const actors: ActorPlan[] = [];
  const sinkStreams: { stream: string; subject: string }[] = [];
  const tables: string[] = [];
  for (const step of steps.values()) {
    if (step.kind === "source" && step.repartition) {
      // Read by one actor, which sends each event through the source's chain to its edge: the
      // keyed steps read the edge (named after the source) instead of the source.
      const log = `${step.id}-log`;
      if (steps.has(log)) {
        throw new ConfigError({
          message: `source "${step.id}" is repartitioned, and its reader's name "${log}" is a step of the pipeline`,
          hint: `rename step "${log}"`,
        });
      }
      sources.push({
        id: log,
        stream: step.stream,
        subject: step.subject,
        direct: step.id,
        eventTime: step.eventTime,
        maxOutOfOrderMs: step.maxOutOfOrderMs,
        idleTimeoutMs: step.idleTimeoutMs,
        decode: sourceDecoder(step),
      });
      actors.push({
        step: step.id,
        partitions: 1,
        createOperator: () => streamSinkOperator,
        tables: [],
        streams: [],
        sources: [log],
        windowed: false,
        edge: { id: step.id, ...edgeStream(pipeline.id, step.id) },
      });
      sources.push(edgeSource(step.id, false, 1));
    } else if (step.kind === "source") {
      sources.push({
        id: step.id,
        stream: step.stream,
        subject: step.subject,
        partitionToken: step.partitionToken,
        eventTime: step.eventTime,
        maxOutOfOrderMs: step.maxOutOfOrderMs,
        idleTimeoutMs: step.idleTimeoutMs,
        decode: sourceDecoder(step),
      });
    } else if (step.kind === "aggregate") {
      const input = steps.get(step.input)!;
      const late = (children.get(step.id) ?? []).find((s) => s.kind === "late");
      const lateEdge = late ? { id: late.id, ...edgeStream(pipeline.id, late.id) } : undefined;
      const emits = streamSinksOf(step.id).length > 0 || edges.has(step.id);
      const updatingInput = input.kind === "keyBy" && updating(steps.get(input.input)!);
      addKeyedActor(step, {
        createOperator: input.kind === "window"
          ? () =>
            windowOperator(step.aggregate, { ...input.window, allowedLatenessMs: input.allowedLatenessMs, emit: input.emit })
          : () =>
            aggregateOperator(step.aggregate, {
              emits,
              retracts: edges.has(step.id),
              ttlMs: step.ttlMs,
              updating: updatingInput,
            }),
        rows: input.kind === "window" ? windowRows : aggregateRows(step.aggregate, { ttlMs: step.ttlMs }),
        sources: sourceOf(input.kind === "window" ? input.input : step.input),
        windowed: input.kind === "window",
        ...(lateEdge ? { lateEdge } : {}),
      });
      if (lateEdge) sources.push(edgeSource(lateEdge.id, false));
    } else if (step.kind === "streamJoin") {
      const { input: left, join: kind, combine, outer } = step;
      addKeyedActor(step, {
        createOperator: () => joinOperator({ kind, left, combine, outer }),
        sources: [...new Set([...sourceOf(step.input), ...sourceOf(step.other)])],
        windowed: false,
      });
    } else if (step.kind === "process" || step.kind === "dedup") {
      addKeyedActor(step, {
        createOperator: step.kind === "process"
          ? () => processOperator(processLogic(step.machine, { processingTime: step.processingTime, input: step.machineInput }))
          : () => dedupOperator(step.withinMs),
        ...(step.kind === "process" ? { rows: processRows } : {}),
        sources: sourceOf(step.input),
        windowed: false,
      });
    } else if (step.kind === "stream" && !keyedStep(steps.get(step.input)!)) {
      actors.push({
        step: step.id,
        partitions: 1,
        createOperator: () => streamSinkOperator,
        tables: [],
        streams: [{ id: step.id, stream: step.stream, subject: step.subject, ...(step.batched ? { batched: true } : {}) }],
        sources: sourceOf(step.input),
        windowed: false,
      });
    }
    if (step.kind === "stream") sinkStreams.push({ stream: step.stream, subject: step.subject });
    if (step.kind === "table") {
      if (tables.includes(step.table)) {
        throw new ConfigError({ message: `two steps write the table "${step.table}"`, hint: "give each table its own name" });
      }
      tables.push(step.table);
    }
  }
  if (sources.length === 0) {
    throw new ConfigError({ message: `pipeline "${pipeline.id}" has no source`, hint: "add one with p.source(...)" });
  }
  if (actors.length === 0) {
    throw new ConfigError({
      message: `pipeline "${pipeline.id}" has no sink`,
      hint: "end it with .toTable(...) or .toStream(...)",
    });
  }
  return {
    pipelineId: pipeline.id,
    partitions: pipeline.partitions,
    sources,
    actors,
    tables,
    sinkStreams,
    lookups,
    steps,
    children,
  };
}

/** The event being routed: its time and the source's watermark before it (set by the reader). */
export interface RoutedEvent {
  time: number;
  watermark: number;
}

export interface RouterOutput {
  /** The current value of a lookup table's key. */
  lookup(table: string, key: Key): unknown;
  /** Buffer a record for an actor. */
  buffer(step: string, partition: number, rec: Rec): void;
  /** A user function of `step` threw on the event at `seq`. */
  fail(step: string, seq: number, reason: string): void;
}

/**
 * The edge out of step `id` as its writers see it: its stream, the partitions that read it, and
 * the reading steps' stateless chain, which the writers run (actors/edge-output.ts).
 */
export function edgePlan(plan: Plan, id: string, lookup: RouterOutput["lookup"]): EdgePlan {
  const source = plan.sources.find((s) => s.id === id && s.edge);
  if (!source) throw new Error(`no edge out of step "${id}"`);
  let take: Parameters<EdgePlan["route"]>[1] = () => undefined;
  let fail: Parameters<EdgePlan["route"]>[2] = () => undefined;
  const route = buildRouter(source, plan, { time: Number.NaN, watermark: Number.NEGATIVE_INFINITY }, {
    lookup,
    buffer: (_step, partition, rec) => take(partition, rec),
    fail: (_step, _seq, reason) => fail(reason),
  });
  return {
    id,
    stream: source.stream,
    partitions: source.edge!.partitions,
    updating: source.edge!.updating,
    // A repartitioned source's events carry the source's watermark before each of them, as read directly.
    forwardsWatermarks: plan.steps.get(id)?.kind === "source",
    route(value, onRecord, onFail) {
      take = onRecord;
      fail = onFail;
      route(value, 0);
    },
  };
}

/** The steps whose actors get the records keyed by `via` (a keyBy, or an unkeyed stream sink). */
export function targetsOf(plan: Plan, via: string): string[] {
  const step = plan.steps.get(via);
  if (step?.kind === "stream") return [via];
  return (plan.children.get(via) ?? []).flatMap((s) =>
    s.kind === "window" ? (plan.children.get(s.id) ?? []).map((a) => a.id) : [s.id]
  );
}

/** The function that takes one decoded event of `source` through its stateless chain. */
export function buildRouter(
  source: SourcePlan,
  plan: Plan,
  event: RoutedEvent,
  out: RouterOutput,
): (value: unknown, seq: number) => void {
  const route = (step: Step): (value: unknown, seq: number) => void => {
    const next = fanOut((plan.children.get(step.id) ?? []).map(route));
    switch (step.kind) {
      case "source":
        return next;
      case "map":
        return (value, seq) => {
          let mapped: unknown;
          try {
            mapped = step.fn(value);
          } catch (error) {
            return out.fail(step.id, seq, `map "${step.id}" threw: ${message(error)}`);
          }
          next(mapped, seq);
        };
      case "filter":
        return (value, seq) => {
          let keep: boolean;
          try {
            keep = step.fn(value);
          } catch (error) {
            return out.fail(step.id, seq, `filter "${step.id}" threw: ${message(error)}`);
          }
          if (keep) next(value, seq);
        };
      case "join":
        return (value, seq) => {
          let joined: unknown;
          try {
            const match = out.lookup(step.lookup, step.key(value));
            if (match === undefined && step.inner) return;
            joined = step.combine(value, match);
          } catch (error) {
            return out.fail(step.id, seq, `join "${step.id}" threw: ${message(error)}`);
          }
          next(joined, seq);
        };
      case "keyBy": {
        // The actors behind this key: aggregates, directly or through a window.
        const targets = targetsOf(plan, step.id);
        const partitions = plan.actors.find((a) => a.step === targets[0])?.partitions ?? 1;
        /** Key one row and hand it to the actors that own its key; false if the key function failed. */
        const keyed = (value: unknown, seq: number, retract: boolean): boolean => {
          let key: Key;
          try {
            key = step.key(value);
          } catch (error) {
            out.fail(step.id, seq, `keyBy "${step.id}" threw: ${message(error)}`);
            return false;
          }
          if (typeof key !== "string" && !(typeof key === "number" && Number.isFinite(key))) {
            out.fail(
              step.id,
              seq,
              `keyBy "${step.id}" returned ${JSON.stringify(key) ?? String(key)}, not a string or finite number`,
            );
            return false;
          }
          const hash = keyHash(key);
          const partition = partitionOf(hash, partitions);
          const rec: Rec = retract
            ? { seq, key, hash, value, time: event.time, watermark: event.watermark, via: step.id, retract: true }
            : { seq, key, hash, value, time: event.time, watermark: event.watermark, via: step.id };
          for (const target of targets) out.buffer(target, partition, rec);
          return true;
        };
        const input = plan.steps.get(step.input)!;
        if (plan.sources.some((s) => s.id === input.id && s.edge?.updating)) {
          // Rows of an updating step: retract the previous version under its key, add the new one.
          return (value, seq) => {
            const { before, after } = value as Change;
            if (before !== undefined && !keyed(before, seq, true)) return;
            if (after !== undefined) keyed(after, seq, false);
          };
        }
        return (value, seq) => void keyed(value, seq, false);
      }
      case "stream":
        if (keyedStep(plan.steps.get(step.input)!)) return next;
        return (value, seq) =>
          out.buffer(step.id, 0, { seq, key: 0, hash: 0, value, time: event.time, watermark: event.watermark, via: step.id });
      case "lookup":
      case "window":
      case "aggregate":
      case "streamJoin":
      case "late":
      case "table":
      case "process":
      case "dedup":
        return next;
    }
  };
  return route(plan.steps.get(source.id)!);
}

/** A step run by its own actors per partition, whose outputs go to its sinks (or an edge). */
function keyedStep(step: Step): step is Extract<Step, { kind: "aggregate" | "streamJoin" | "process" | "dedup" }> {
  return step.kind === "aggregate" || step.kind === "streamJoin" || step.kind === "process" || step.kind === "dedup";
}

function fanOut(routes: ((value: unknown, seq: number) => void)[]): (value: unknown, seq: number) => void {
  if (routes.length === 1) return routes[0]!;
  return (value, seq) => {
    for (const r of routes) r(value, seq);
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
