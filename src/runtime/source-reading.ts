/**
 * Source reading: one reader per source (a user's stream, or an edge between keyed steps) for
 * the operator actors a worker runs. Each reads from the lowest position its actors committed (an
 * actor skips what its own state already reflects), decodes every message (a dead letter when it
 * cannot be), sets the event's time and the source's watermark before it from the log alone, walks
 * it through the source's stateless chain (map, filter, lookup joins, keyBy: src/runtime/plan.ts)
 * into the buffer of the actor that owns its key, and hands each actor its records of the batch
 * with the position and watermark the batch reached. Records of partitions this worker does not
 * run are dropped here. An edge's watermark is the lowest over the writing step's partitions.
 *
 * @example
 * const reading = new SourceReading(nc, plan, publisher, supervisor, lookups, { onFailure: () => restart() });
 * await reading.start();
 * await reading.stop();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Either } from "effect";
import type { EdgeEnvelope } from "../../actors/edge-output.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Publisher } from "../log/publisher.ts";
import { defaultMaxBatch, type Reader, type SourceMessage, startReader } from "../log/reader.ts";
import { publishSideOutput } from "../log/side-outputs.ts";
import type { LookupReplica } from "../state/lookup.ts";
import { buildRouter, type Plan, type RoutedEvent, type SourcePlan } from "./plan.ts";
import type { SupervisedActor, Supervisor } from "./supervisor.ts";

export interface SourceReadingOptions {
  readonly clock?: Clock;
  /** Largest batch handed to the actors. */
  readonly maxBatch?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /** A reader stopped by itself (an error it could not recover from). */
  readonly onFailure?: (error: unknown) => void;
}

/** Set an event aside as a dead letter of `step`, with the reason and its original bytes. */
type SetAsideFn = (step: string, seq: number, reason: string, data: Uint8Array) => void;

export class SourceReading {
  /** Source-stage dead letters (decode errors, throwing stateless steps), since this process started. */
  deadLetters = 0;
  /** When a reader last handed over a full batch (it was behind its stream: catching up). */
  fullBatchAt = Number.NEGATIVE_INFINITY;
  readonly #readers = new Map<string, Reader>();
  readonly #idleTimers = new Map<string, unknown>();
  #reading = false;
  readonly #clock: Clock;

  constructor(
    readonly nc: NatsConnection,
    readonly plan: Plan,
    readonly publisher: Publisher,
    readonly supervisor: Supervisor,
    readonly lookups: ReadonlyMap<string, LookupReplica<unknown>>,
    readonly options: SourceReadingOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Start a reader for every source that feeds an actor of this worker. */
  async start(): Promise<void> {
    this.#reading = true;
    // The actors by step and partition, as they are while reading (assignments change only while it is stopped).
    const byStep = new Map<string, (SupervisedActor | undefined)[]>();
    for (const a of this.supervisor.actors) {
      const partitions = byStep.get(a.step) ?? [];
      partitions[a.partition] = a;
      byStep.set(a.step, partitions);
    }
    for (const source of this.plan.sources) {
      const fed = this.supervisor.fedBy(source.id);
      if (fed.length === 0) continue;
      const from = Math.min(...fed.map((a) => a.core.positions[source.id] ?? 0)) + 1;
      // The highest event time before `from`: the source's watermark there (the lowest an actor
      // holds) plus the allowed out-of-orderness. Watermarks then follow from the log alone.
      const watermark = Math.min(...fed.map((a) => a.core.watermarks.bySource[source.id] ?? Number.NEGATIVE_INFINITY));
      const handler = source.edge
        ? this.#edgeHandler(source, fed, byStep, watermark)
        : this.#batchHandler(source, fed, byStep, watermark + source.maxOutOfOrderMs);
      const onBatch = source.idleTimeoutMs === undefined ? handler : this.#watchIdle(source, fed, handler);
      const reader = await startReader(this.nc, {
        stream: source.stream,
        subject: source.subject,
        fromSeq: from,
        onBatch,
        beforeNext: () => (this.publisher.pending > 50_000 ? this.publisher.whenPendingBelow(25_000) : undefined),
        ...(this.options.maxBatch === undefined ? {} : { maxBatch: this.options.maxBatch }),
        onReset: (reason) => this.options.log?.("reader-reset", { source: source.id, reason }),
        onError: (error) => {
          this.options.log?.("reader-failed", { source: source.id, error: String(error) });
          this.options.onFailure?.(error);
        },
      });
      this.#readers.set(source.id, reader);
      this.options.log?.("reading", { source: source.id, stream: source.stream, fromSeq: from });
    }
  }

  /** Stop every reader; what they had not handed over is dropped (it is read again from the positions). */
  async stop(): Promise<void> {
    this.#reading = false;
    for (const handle of this.#idleTimers.values()) this.#clock.clearTimeout(handle);
    this.#idleTimers.clear();
    const readers = [...this.#readers.values()];
    this.#readers.clear();
    await Promise.all(readers.map((r) => r.stop()));
    for (const a of this.supervisor.actors) a.buffer = [];
  }

  /**
   * A source with an idle timeout: when no batch came for that long, its actors hear that it is
   * idle (it stops holding their watermarks back) until its next batch.
   */
  #watchIdle(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    handler: (messages: SourceMessage[]) => void,
  ): (messages: SourceMessage[]) => void {
    const clock = this.#clock;
    const timeout = source.idleTimeoutMs!;
    let lastActive = clock.now();
    let idle = false;
    const check = () => {
      if (!idle && clock.now() - lastActive >= timeout && this.#reading) {
        idle = true;
        this.options.log?.("source-idle", { source: source.id, idleMs: clock.now() - lastActive });
        for (const a of fed) a.actor.send({ type: "idle", source: source.id });
      }
      this.#idleTimers.set(source.id, clock.setTimeout(check, Math.max(1, timeout / 4)));
    };
    this.#idleTimers.set(source.id, clock.setTimeout(check, Math.max(1, timeout / 4)));
    return (messages) => {
      lastActive = clock.now();
      idle = false;
      handler(messages);
    };
  }

  /** Hand each actor its records of a batch, and the position and watermark the batch reached. */
  #deliver(source: SourcePlan, fed: readonly SupervisedActor[], upTo: number, watermark: number, size: number): void {
    if (size >= (this.options.maxBatch ?? defaultMaxBatch)) this.fullBatchAt = this.#clock.now();
    for (const a of fed) {
      const records = a.buffer;
      a.buffer = [];
      a.actor.send({ type: "batch", batch: { source: source.id, records, upTo, watermark } });
    }
  }

  /** What to do with a failing stateless step, or an undecodable event: a dead letter. */
  #setAside(source: SourcePlan): SetAsideFn {
    const pipelineId = this.plan.pipelineId;
    return (step, seq, reason, data) => {
      this.deadLetters++;
      publishSideOutput(this.publisher, pipelineId, "dlq", {
        step,
        source: source.id,
        sourceStream: source.stream,
        sourceSeq: seq,
        reason,
        data,
      });
    };
  }

  /**
   * The loop every source's reading shares: decode each message (a dead letter when it cannot
   * be), let `take` set the event's time and watermark and route it, then hand each actor its
   * records with the position and watermark the batch reached.
   */
  #handler(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    byStep: ReadonlyMap<string, readonly (SupervisedActor | undefined)[]>,
    event: RoutedEvent,
    take: (value: unknown, m: SourceMessage, route: (value: unknown, seq: number) => void, setAside: SetAsideFn) => void,
    watermark: () => number,
  ): (messages: SourceMessage[]) => void {
    let current: SourceMessage | undefined;
    const setAside = this.#setAside(source);
    const lookups = this.lookups;
    const route = buildRouter(source, this.plan, event, {
      lookup: (table, key) => lookups.get(table)!.get(key),
      // Records of a partition another worker runs are not this one's.
      buffer: (step, partition, rec) => void byStep.get(step)?.[partition]?.buffer.push(rec),
      fail: (step, seq, reason) => setAside(step, seq, reason, current!.data),
    });
    return (messages) => {
      if (!this.#reading) return;
      for (const m of messages) {
        current = m;
        const decoded = source.decode(m.data);
        if (Either.isLeft(decoded)) setAside(source.id, m.seq, decoded.left, m.data);
        else take(decoded.right, m, route, setAside);
      }
      this.#deliver(source, fed, messages[messages.length - 1]!.seq, watermark(), messages.length);
    };
  }

  /**
   * Reading the edge out of an earlier step: envelopes from each of its partitions. The edge's
   * watermark is the lowest over the partitions' (each partition's as its last envelope said;
   * after a restart, each starts at the watermark the reading actors checkpointed).
   */
  #edgeHandler(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    byStep: ReadonlyMap<string, readonly (SupervisedActor | undefined)[]>,
    restartWatermark: number,
  ): (messages: SourceMessage[]) => void {
    const partitions = new Array<number>(source.edge!.partitions).fill(restartWatermark);
    const event = { time: Number.NaN, watermark: restartWatermark };
    const updating = source.edge!.updating;
    let low = restartWatermark;
    return this.#handler(source, fed, byStep, event, (value, m, route) => {
      const envelope = value as EdgeEnvelope;
      const w = envelope.w ?? Number.NEGATIVE_INFINITY;
      if (w > partitions[envelope.p]!) {
        const was = partitions[envelope.p]!;
        partitions[envelope.p] = w;
        if (was === low) low = Math.min(...partitions);
      }
      if (envelope.v === undefined && envelope.b === undefined) return;
      event.time = envelope.t ?? Number.NaN;
      event.watermark = low;
      route(updating ? { before: envelope.b, after: envelope.v } : envelope.v, m.seq);
    }, () => low);
  }

  /** Reading a source: each event's time, and the watermark before it, from the log alone. */
  #batchHandler(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    byStep: ReadonlyMap<string, readonly (SupervisedActor | undefined)[]>,
    maxEventTime: number,
  ): (messages: SourceMessage[]) => void {
    const { eventTime, maxOutOfOrderMs } = source;
    const event = { time: Number.NaN, watermark: Number.NEGATIVE_INFINITY };
    return this.#handler(source, fed, byStep, event, (value, m, route, setAside) => {
      if (eventTime) {
        let time: number;
        try {
          time = eventTime(value);
        } catch (error) {
          return setAside(
            source.id,
            m.seq,
            `eventTime of source "${source.id}" threw: ${(error as Error)?.message ?? error}`,
            m.data,
          );
        }
        if (!Number.isFinite(time)) {
          return setAside(
            source.id,
            m.seq,
            `eventTime of source "${source.id}" returned ${time}, not a number of milliseconds`,
            m.data,
          );
        }
        event.time = time;
        event.watermark = maxEventTime - maxOutOfOrderMs;
        if (time > maxEventTime) maxEventTime = time;
      }
      route(value, m.seq);
    }, () => maxEventTime - maxOutOfOrderMs);
  }
}
