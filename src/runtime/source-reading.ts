/**
 * Source reading: the readers of the sources (a user's stream, or an edge between keyed steps)
 * that feed the operator actors a worker runs. A source is read whole, or per partition when it
 * is partitioned by subject; an edge per partition this worker runs (whole when it runs them
 * all), so a worker reads only its share. Each reader reads from the lowest position its actors
 * committed (an actor skips what its own state already reflects), decodes every message (a dead
 * letter when it cannot be), sets the event's time and the source's watermark before it from the
 * log alone, walks it through the source's stateless chain (map, filter, lookup joins, keyBy:
 * src/runtime/plan.ts) into the buffer of the actor that owns its key (an edge's records come
 * routed by their writers), and hands each actor its records of the batch with the position and
 * watermark the batch reached. Records of partitions this worker does not run are dropped here.
 * An edge's watermark is the lowest over the writing step's partitions. A change of assignments
 * stops and starts only the readers whose actors change (`around`).
 *
 * @example
 * const reading = new SourceReading(nc, plan, publisher, supervisor, lookups, { onFailure: () => restart() });
 * await reading.start();
 * await reading.stop();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Either } from "effect";
import { type EdgeEnvelope, type EdgeRecord, entrySeq } from "../../actors/edge-output.ts";
import type { Rec } from "../../actors/operator.ts";
import { edgeReaderFilter, sourcePartitionSubject } from "../core/names.ts";
import { keyHash } from "../core/partition.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Publisher } from "../log/publisher.ts";
import { defaultMaxBatch, type Reader, type SourceMessage, startReader } from "../log/reader.ts";
import { publishSideOutput } from "../log/side-outputs.ts";
import type { LookupReplica } from "../state/lookup.ts";
import { buildRouter, type Plan, type RoutedEvent, type SourcePlan, targetsOf } from "./plan.ts";
import { type Assignment, assignmentKey } from "./assignments.ts";
import type { SupervisedActor, Supervisor } from "./supervisor.ts";

export interface SourceReadingOptions {
  readonly clock?: Clock;
  /** Largest batch handed to the actors. */
  readonly maxBatch?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /** A reader stopped by itself (an error it could not recover from). */
  readonly onFailure?: (error: unknown) => void;
}

/** What a reader needs to know of an actor it feeds (one running, or one about to be assigned). */
interface Fed {
  readonly step: string;
  readonly partition: number;
  readonly sources: readonly string[];
}

/** A reader of a source: its subject filter, the actors it feeds, its name in logs, and for a partitioned source its partition. */
interface Reading<A extends Fed> {
  readonly subject: string | undefined;
  readonly fed: A[];
  readonly name: string;
  readonly partition?: number;
}

/** A reader running, what it reads for (to tell whether a change of assignments touches it), and whether it may still hand over. */
interface RunningReader {
  readonly reader: Reader;
  readonly signature: string;
  readonly live: Live;
}

/** Whether a reader may still hand over, and the first sequence its next batch accounts for. */
interface Live {
  reading: boolean;
  from: number;
}

/** What a reading is: its name, subject and the actors it feeds. */
function signature(reading: Reading<Fed>): string {
  const fed = reading.fed.map((a) => `${a.step}.${a.partition}`).sort();
  return `${reading.name}|${reading.subject ?? ""}|${fed.join(",")}`;
}

/** Set an event aside as a dead letter of `step`, with the reason and its original bytes. */
type SetAsideFn = (step: string, seq: number, reason: string, data: Uint8Array) => void;

export class SourceReading {
  /** Source-stage dead letters (decode errors, throwing stateless steps), since this process started. */
  deadLetters = 0;
  /**
   * Messages read, by source (an edge's from the subjects of this worker's partitions only), since
   * this process started; each once, though a reader that starts again reads some again.
   */
  readonly messagesRead: Record<string, number> = {};
  /** How far each reader (by name) got: what it reads again after a restart is not counted twice. */
  readonly #readUpTo = new Map<string, number>();
  /** When a reader last handed over a full batch (it was behind its stream: catching up). */
  fullBatchAt = Number.NEGATIVE_INFINITY;
  readonly #readers = new Map<string, RunningReader>();
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

  /**
   * Start a reader for every source that feeds an actor of this worker: a source's whole stream;
   * an edge's subjects of the partitions this worker runs (all of them: the whole stream).
   */
  async start(): Promise<void> {
    this.#reading = true;
    for (const source of this.plan.sources) {
      for (const reading of this.#readings(source, this.supervisor.actors)) await this.#startReader(source, reading);
    }
  }

  /**
   * Change the assignments with `change` (it starts `added` and recovers them, or releases
   * `removed`) while only the readers whose actors change stop: an edge's or a partitioned
   * source's reader of another partition goes on. A source read whole stops for any change of
   * the actors it feeds, and starts again from the lowest position (the others skip what they had).
   */
  async around(
    changing: { readonly added?: readonly Assignment[]; readonly removed?: readonly Assignment[] },
    change: () => Promise<void>,
  ): Promise<void> {
    const removed = new Set((changing.removed ?? []).map(assignmentKey));
    const planned: { step: string; partition: number; sources: readonly string[] }[] = [
      ...this.supervisor.actors.filter((a) => !removed.has(assignmentKey(a))),
      ...(changing.added ?? []).filter((a) => !this.supervisor.actorOf(a.step, a.partition))
        .map((a) => ({ ...a, sources: this.plan.actors.find((p) => p.step === a.step)!.sources })),
    ];
    const next = new Set(this.plan.sources.flatMap((source) => this.#readings(source, planned).map(signature)));
    const stopping = [...this.#readers].filter(([, r]) => !next.has(r.signature));
    for (const [name] of stopping) this.#readers.delete(name);
    await Promise.all(stopping.map(([name, r]) => this.#stopReader(name, r)));
    try {
      await change();
    } finally {
      if (this.#reading) {
        for (const source of this.plan.sources) {
          for (const reading of this.#readings(source, this.supervisor.actors)) {
            if (this.#readers.get(reading.name)?.signature !== signature(reading)) await this.#startReader(source, reading);
          }
        }
      }
    }
  }

  /** The readers this worker's actors need now, by source: each one's subject filter and the actors it feeds. */
  readings(): { source: SourcePlan; subject: string | undefined; fed: SupervisedActor[] }[] {
    return this.plan.sources.flatMap((source) =>
      this.#readings(source, this.supervisor.actors).map(({ subject, fed }) => ({ source, subject, fed }))
    );
  }

  /** Start reading `reading` of `source`, from the lowest position its actors committed. */
  async #startReader(source: SourcePlan, reading: Reading<SupervisedActor>): Promise<void> {
    const { subject, fed, name, partition } = reading;
    // The actors this reader feeds, by step and partition.
    const byStep = new Map<string, (SupervisedActor | undefined)[]>();
    for (const a of fed) {
      const partitions = byStep.get(a.step) ?? [];
      partitions[a.partition] = a;
      byStep.set(a.step, partitions);
    }
    const from = Math.min(...fed.map((a) => a.core.positions[source.id] ?? 0)) + 1;
    // The highest event time before `from`: the source's watermark there (the lowest an actor
    // holds) plus the allowed out-of-orderness. Watermarks then follow from the log alone.
    const watermark = Math.min(...fed.map((a) => a.core.watermarks.bySource[source.id] ?? Number.NEGATIVE_INFINITY));
    // What the next batch accounts for from: where the reader starts, then after each batch.
    const live = { reading: true, from };
    // An edge's: each writing partition's, the lowest the actors hold.
    const writers = Array.from(
      { length: source.edge?.writers ?? 0 },
      (_, p) => Math.min(...fed.map((a) => a.core.watermarks.writer(source.id, p))),
    );
    const handler = source.edge
      ? this.#edgeHandler(source, fed, byStep, writers, live)
      : this.#batchHandler(source, fed, byStep, watermark + source.maxOutOfOrderMs, partition, live);
    const handle = source.idleTimeoutMs === undefined ? handler : this.#watchIdle(source, name, fed, handler);
    const onBatch = (messages: SourceMessage[]) => {
      const upTo = this.#readUpTo.get(name) ?? 0;
      const last = messages[messages.length - 1]!.seq;
      if (last > upTo) {
        let fresh = 0;
        for (const m of messages) if (m.seq > upTo) fresh++;
        this.messagesRead[source.id] = (this.messagesRead[source.id] ?? 0) + fresh;
        this.#readUpTo.set(name, last);
      }
      handle(messages);
    };
    const reader = await startReader(this.nc, {
      stream: source.stream,
      subject,
      fromSeq: from,
      onBatch,
      beforeNext: () => (this.publisher.pending > 50_000 ? this.publisher.whenPendingBelow(25_000) : undefined),
      ...(this.options.maxBatch === undefined ? {} : { maxBatch: this.options.maxBatch }),
      onReset: (reason) => this.options.log?.("reader-reset", { source: name, reason }),
      onError: (error) => {
        this.options.log?.("reader-failed", { source: name, error: String(error) });
        this.options.onFailure?.(error);
      },
    });
    this.#readers.set(name, { reader, signature: signature(reading), live });
    this.options.log?.("reading", { source: name, stream: source.stream, fromSeq: from });
  }

  async #stopReader(name: string, running: RunningReader): Promise<void> {
    running.live.reading = false;
    const idle = this.#idleTimers.get(name);
    if (idle !== undefined) this.#clock.clearTimeout(idle);
    this.#idleTimers.delete(name);
    await running.reader.stop();
  }

  /**
   * The readers `source` needs to feed `actors`, each with the subject it filters on and the
   * actors it feeds. An edge has a subject per reading partition: a reader for each partition
   * this worker runs, or one for the whole stream when it runs them all.
   */
  #readings<A extends Fed>(source: SourcePlan, actors: readonly A[]): Reading<A>[] {
    const fed = actors.filter((a) => a.sources.includes(source.id));
    if (fed.length === 0) return [];
    const { partitionToken } = source;
    if (partitionToken !== undefined) {
      // A source partitioned by subject: a reader per partition, always (each with its own
      // watermark, whoever runs it). An unkeyed step (a stream sink) reads every partition's
      // subject with one reader of its own: an actor has one position per source, and readers of
      // several partitions feeding it would each move it past what the others had not given yet.
      const keyed = fed.filter((a) => this.#partitionsOf(a.step) !== 1);
      const unkeyed = fed.filter((a) => this.#partitionsOf(a.step) === 1);
      const partitions = [...new Set(keyed.map((a) => a.partition))].sort((a, b) => a - b);
      const readings: Reading<A>[] = partitions.map((q) => ({
        subject: sourcePartitionSubject(source.subject!, partitionToken, q),
        fed: keyed.filter((a) => a.partition === q),
        name: `${source.id}.${q}`,
        partition: q,
      }));
      if (unkeyed.length > 0) {
        readings.push({ subject: sourcePartitionSubject(source.subject!, partitionToken, "*"), fed: unkeyed, name: source.id });
      }
      return readings;
    }
    if (!source.edge) return [{ subject: source.subject, fed, name: source.id }];
    const partitions = new Set(fed.map((a) => a.partition));
    if (partitions.size === source.edge.partitions) return [{ subject: source.subject, fed, name: source.id }];
    return [...partitions].sort((a, b) => a - b).map((q) => ({
      subject: edgeReaderFilter(this.plan.pipelineId, source.id, q),
      fed: fed.filter((a) => a.partition === q),
      name: `${source.id}.${q}`,
    }));
  }

  #partitionsOf(step: string): number {
    return this.plan.actors.find((a) => a.step === step)!.partitions;
  }

  /** Stop every reader; what they had not handed over is dropped (it is read again from the positions). */
  async stop(): Promise<void> {
    this.#reading = false;
    const readers = [...this.#readers];
    this.#readers.clear();
    await Promise.all(readers.map(([name, r]) => this.#stopReader(name, r)));
    for (const a of this.supervisor.actors) a.buffer = [];
  }

  /**
   * A source with an idle timeout: when no batch came for that long, its actors hear that it is
   * idle (it stops holding their watermarks back) until its next batch.
   */
  #watchIdle(
    source: SourcePlan,
    name: string,
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
      this.#idleTimers.set(name, clock.setTimeout(check, Math.max(1, timeout / 4)));
    };
    this.#idleTimers.set(name, clock.setTimeout(check, Math.max(1, timeout / 4)));
    return (messages) => {
      lastActive = clock.now();
      idle = false;
      handler(messages);
    };
  }

  /** Hand each actor its records of a batch, and the range of positions and the watermark the batch reached. */
  #deliver(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    live: Live,
    upTo: number,
    watermark: number,
    size: number,
    writers?: readonly number[],
  ): void {
    if (size >= (this.options.maxBatch ?? defaultMaxBatch)) this.fullBatchAt = this.#clock.now();
    const from = live.from;
    if (upTo >= from) live.from = upTo + 1;
    for (const a of fed) {
      const records = a.buffer;
      a.buffer = [];
      a.actor.send({
        type: "batch",
        batch: { source: source.id, records, from, upTo, watermark, ...(writers ? { writers } : {}) },
      });
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
    partition: number | undefined,
    live: Live,
  ): (messages: SourceMessage[]) => void {
    let current: SourceMessage | undefined;
    const setAside = this.#setAside(source);
    const lookups = this.lookups;
    const keyed = new Map(this.plan.actors.map((a) => [a.step, a.partitions > 1] as const));
    const direct = source.direct;
    // A repartitioned source's events go to the actor that repartitions them, as they are.
    const route = direct !== undefined
      ? (value: unknown, seq: number) =>
        void byStep.get(direct)?.[0]?.buffer.push({
          seq,
          key: 0,
          hash: 0,
          value,
          time: event.time,
          watermark: event.watermark,
          via: direct,
        })
      : buildRouter(source, this.plan, event, {
        lookup: (table, key) => lookups.get(table)!.get(key),
        // Records of a partition another worker runs are not this one's.
        buffer: partition === undefined ? (step, q, rec) => void byStep.get(step)?.[q]?.buffer.push(rec) : (step, q, rec) => {
          if (q === partition || !keyed.get(step)) return void byStep.get(step)?.[q]?.buffer.push(rec);
          setAside(
            rec.via,
            rec.seq,
            `${rec.via} put key ${
              JSON.stringify(rec.key)
            } in partition ${q}, but it came on the subject of partition ${partition}: partition the stream by the same key (partitionOfKey), or read it by subject instead of partitionSubject`,
            current!.data,
          );
        },
        fail: (step, seq, reason) => setAside(step, seq, reason, current!.data),
      });
    return (messages) => {
      if (!live.reading) return;
      for (const m of messages) {
        current = m;
        const decoded = source.decode(m.data);
        if (Either.isLeft(decoded)) setAside(source.id, m.seq, decoded.left, m.data);
        else take(decoded.right, m, route, setAside);
      }
      this.#deliver(source, fed, live, messages[messages.length - 1]!.seq, watermark(), messages.length);
    };
  }

  /**
   * Reading the edge out of an earlier step: envelopes from each of its partitions, with the
   * records its writers routed to the partitions read here (actors/edge-output.ts). The edge's
   * watermark is the lowest over the writing partitions' (each partition's as its last envelope
   * said; after a restart, each starts at its watermark the reading actors checkpointed, the
   * lowest of theirs: starting every partition at the edge's lowest instead, a partition far
   * ahead that sent nothing since held the edge back, and events late before a restart were
   * on time after it).
   */
  #edgeHandler(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    byStep: ReadonlyMap<string, readonly (SupervisedActor | undefined)[]>,
    restartWatermarks: readonly number[],
    live: Live,
  ): (messages: SourceMessage[]) => void {
    const partitions = [...restartWatermarks];
    let low = Math.min(...partitions);
    const setAside = this.#setAside(source);
    const targets = new Map<string, readonly string[]>();
    const targetsOfVia = (via: string) => {
      let t = targets.get(via);
      if (!t) targets.set(via, t = targetsOf(this.plan, via));
      return t;
    };
    /** Writing partition `p`'s watermark is `w` now (null: none yet). */
    const advance = (p: number, w: number | null | undefined) => {
      const at = w ?? Number.NEGATIVE_INFINITY;
      if (at > partitions[p]!) {
        const was = partitions[p]!;
        partitions[p] = at;
        if (was === low) low = Math.min(...partitions);
      }
    };
    /** The records of one output, read as input `seq`, to the actors of partition `q` that take them. */
    const take = (seq: number, q: number, t: number | null | undefined, records: EdgeRecord[]) => {
      const time = t ?? Number.NaN;
      for (const [via, key, value, retract] of records) {
        const rec: Rec = retract
          ? { seq, key, hash: keyHash(key), value, time, watermark: low, via, retract: true }
          : { seq, key, hash: keyHash(key), value, time, watermark: low, via };
        for (const step of targetsOfVia(via)) byStep.get(step)?.[q]?.buffer.push(rec);
      }
    };
    return (messages) => {
      if (!live.reading) return;
      for (const m of messages) {
        const decoded = source.decode(m.data);
        if (Either.isLeft(decoded)) {
          setAside(source.id, m.seq, decoded.left, m.data);
          continue;
        }
        const envelope = decoded.right as EdgeEnvelope;
        if (typeof envelope.q !== "number") {
          setAside(source.id, m.seq, "an edge envelope without a reading partition (written by an older Eddy)", m.data);
          continue;
        }
        const { p, q } = envelope;
        advance(p, envelope.w);
        if (envelope.b !== undefined) {
          // A batch: each entry with the watermark before it, numbered inside the message.
          const entries = envelope.b;
          for (let i = 0; i < entries.length; i++) {
            const [t, w, r] = entries[i]!;
            advance(p, w);
            take(entrySeq(m.seq, i), q, t, r);
          }
        } else if (envelope.r !== undefined) take(m.seq, q, envelope.t, envelope.r);
      }
      this.#deliver(source, fed, live, messages[messages.length - 1]!.seq, low, messages.length, [...partitions]);
    };
  }

  /** Reading a source: each event's time, and the watermark before it, from the log alone. */
  #batchHandler(
    source: SourcePlan,
    fed: readonly SupervisedActor[],
    byStep: ReadonlyMap<string, readonly (SupervisedActor | undefined)[]>,
    maxEventTime: number,
    partition: number | undefined,
    live: Live,
  ): (messages: SourceMessage[]) => void {
    const { eventTime, maxOutOfOrderMs } = source;
    const event = { time: Number.NaN, watermark: Number.NEGATIVE_INFINITY };
    return this.#handler(
      source,
      fed,
      byStep,
      event,
      (value, m, route, setAside) => {
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
      },
      () => maxEventTime - maxOutOfOrderMs,
      partition,
      live,
    );
  }
}
