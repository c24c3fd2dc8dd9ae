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
import { Either, ParseResult, Schema } from "effect";
import { aggregateOperator } from "../../actors/aggregate.ts";
import { dedupOperator } from "../../actors/dedup.ts";
import type { Operator, Rec } from "../../actors/operator.ts";
import { processLogic, processOperator } from "../../actors/process.ts";
import { streamSinkOperator } from "../../actors/stream-sink.ts";
import { windowOperator } from "../../actors/window.ts";
import { ConfigError } from "../errors.ts";
import { type Key, keyHash, partitionOf } from "../pipeline/partition.ts";
import type { Pipeline, Step } from "../pipeline/pipeline.ts";

export interface ActorPlan {
  readonly step: string;
  readonly partitions: number;
  /** A new operator instance (one per actor: an operator may keep timers beside its state). */
  readonly createOperator: () => Operator;
  readonly tables: readonly string[];
  readonly streams: readonly { readonly id: string; readonly subject: string }[];
  /** Sources whose events reach this step. */
  readonly sources: readonly string[];
  /** A windowed step: its table rows are keyed `<key>|<windowStart>`. */
  readonly windowed: boolean;
}

export interface SourcePlan {
  readonly id: string;
  readonly stream: string;
  readonly subject: string | undefined;
  readonly decode: (data: Uint8Array) => Either.Either<unknown, string>;
  readonly eventTime: ((value: unknown) => number) | undefined;
  readonly maxOutOfOrderMs: number;
}

export interface Plan {
  readonly pipelineId: string;
  readonly sources: readonly SourcePlan[];
  readonly actors: readonly ActorPlan[];
  readonly tables: readonly string[];
  /** Streams Eddy writes to (created when missing). */
  readonly sinkStreams: readonly { readonly stream: string; readonly subject: string }[];
  /** Lookup tables the stateless chains join with. */
  readonly lookups: readonly { readonly id: string; readonly bucket: string; readonly schema: Schema.Schema<unknown, unknown> }[];
  readonly steps: ReadonlyMap<string, Step>;
  readonly children: ReadonlyMap<string, readonly Step[]>;
}

const decoder = new TextDecoder();

/** Steps whose actors publish to the stream sinks that read them. */
const keyedSteps: ReadonlySet<Step["kind"]> = new Set(["aggregate", "process", "dedup"]);

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
  }
  const sourceOf = (id: string): string[] => {
    const step = steps.get(id)!;
    if (step.kind === "lookup") return [];
    return step.kind === "source" ? [step.id] : sourceOf(step.input);
  };
  const lookups = [...steps.values()].flatMap((
    s,
  ) => (s.kind === "lookup" ? [{ id: s.id, bucket: s.bucket, schema: s.schema }] : []));
  const sources: SourcePlan[] = [];
  const actors: ActorPlan[] = [];
  const sinkStreams: { stream: string; subject: string }[] = [];
  const tables: string[] = [];
  for (const step of steps.values()) {
    if (step.kind === "source") {
      const decode = Schema.decodeUnknownEither(step.schema, { errors: "first" });
      sources.push({
        id: step.id,
        stream: step.stream,
        subject: step.subject,
        eventTime: step.eventTime,
        maxOutOfOrderMs: step.maxOutOfOrderMs,
        decode(data) {
          let json: unknown;
          try {
            json = JSON.parse(decoder.decode(data));
          } catch (error) {
            return Either.left(`not JSON: ${(error as Error).message}`);
          }
          return Either.mapLeft(
            decode(json),
            (e) => `does not match the schema of source "${step.id}": ${ParseResult.TreeFormatter.formatErrorSync(e)}`,
          );
        },
      });
    } else if (step.kind === "aggregate") {
      const sinks = children.get(step.id) ?? [];
      const streams = sinks.flatMap((s) => (s.kind === "stream" ? [{ id: s.id, subject: s.subject }] : []));
      const stepTables = sinks.flatMap((s) => (s.kind === "table" ? [s.table] : []));
      const input = steps.get(step.input)!;
      actors.push({
        step: step.id,
        partitions: pipeline.partitions,
        createOperator: input.kind === "window"
          ? () =>
            windowOperator(step.aggregate, { ...input.window, allowedLatenessMs: input.allowedLatenessMs, emit: input.emit })
          : () => aggregateOperator(step.aggregate, streams.length > 0, step.ttlMs),
        tables: stepTables,
        streams,
        sources: sourceOf(step.id),
        windowed: input.kind === "window",
      });
    } else if (step.kind === "process" || step.kind === "dedup") {
      const sinks = children.get(step.id) ?? [];
      actors.push({
        step: step.id,
        partitions: pipeline.partitions,
        createOperator: step.kind === "process"
          ? () => processOperator(processLogic(step.machine, { processingTime: step.processingTime, input: step.machineInput }))
          : () => dedupOperator(step.withinMs),
        tables: sinks.flatMap((s) => (s.kind === "table" ? [s.table] : [])),
        streams: sinks.flatMap((s) => (s.kind === "stream" ? [{ id: s.id, subject: s.subject }] : [])),
        sources: sourceOf(step.id),
        windowed: false,
      });
    } else if (step.kind === "stream" && !keyedSteps.has(steps.get(step.input)!.kind)) {
      actors.push({
        step: step.id,
        partitions: 1,
        createOperator: () => streamSinkOperator,
        tables: [],
        streams: [{ id: step.id, subject: step.subject }],
        sources: sourceOf(step.id),
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
  return { pipelineId: pipeline.id, sources, actors, tables, sinkStreams, lookups, steps, children };
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
        const targets = (plan.children.get(step.id) ?? []).flatMap((s) =>
          s.kind === "window" ? (plan.children.get(s.id) ?? []).map((a) => a.id) : [s.id]
        );
        const partitions = plan.actors.find((a) => a.step === targets[0])?.partitions ?? 1;
        return (value, seq) => {
          let key: Key;
          try {
            key = step.key(value);
          } catch (error) {
            return out.fail(step.id, seq, `keyBy "${step.id}" threw: ${message(error)}`);
          }
          if (typeof key !== "string" && !(typeof key === "number" && Number.isFinite(key))) {
            return out.fail(
              step.id,
              seq,
              `keyBy "${step.id}" returned ${JSON.stringify(key) ?? String(key)}, not a string or finite number`,
            );
          }
          const hash = keyHash(key);
          const partition = partitionOf(hash, partitions);
          const rec = { seq, key, hash, value, time: event.time, watermark: event.watermark };
          for (const target of targets) out.buffer(target, partition, rec);
        };
      }
      case "stream":
        if (keyedSteps.has(plan.steps.get(step.input)!.kind)) return next;
        return (value, seq) =>
          out.buffer(step.id, 0, { seq, key: 0, hash: 0, value, time: event.time, watermark: event.watermark });
      case "lookup":
      case "window":
      case "aggregate":
      case "table":
      case "process":
      case "dedup":
        return next;
    }
  };
  return route(plan.steps.get(source.id)!);
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
