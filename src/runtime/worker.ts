/**
 * A worker runs a pipeline's operator actors: all partitions of every step, in this process. It
 * creates what the pipeline writes to (dead-letter stream, sink streams, table buckets, the state
 * bucket), recovers every actor from its last checkpoint, then reads each source from the lowest
 * committed position; an actor skips what it already applied. If an actor fails, reading stops
 * until the actor has recovered (after its backoff), then resumes from the lowest position again.
 *
 * @example
 * const worker = await Worker.start(nc, coffeeShop());
 * // ... later, on SIGTERM:
 * await worker.stop(); // drains: a final checkpoint per actor
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Either } from "effect";
import { waitFor } from "xstate";
import type { Rec } from "../../actors/operator.ts";
import {
  type EdgeEnvelope,
  lifecycleState,
  type OperatorActor,
  type OperatorCore,
  startOperatorActor,
} from "../../actors/operator-actor.ts";
import type { LifecycleState } from "../../actors/lifecycle.ts";
import { TableFlusher } from "../../actors/table-flush.ts";
import { ensureSideStreams, publishSideOutput } from "../log/side-outputs.ts";
import { createPublisher, type Publisher } from "../log/publisher.ts";
import { natsOutputLog } from "../log/record-batch.ts";
import { ensureStream, lastSequence } from "../log/streams.ts";
import { checkSourceStream, defaultMaxBatch, type Reader, type SourceMessage, startReader } from "../log/reader.ts";
import type { Pipeline } from "../pipeline/pipeline.ts";
import { CheckpointSlots, CheckpointStore } from "../state/checkpoint.ts";
import { LookupReplica } from "../state/lookup.ts";
import { createTable } from "../state/table.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { CheckpointHistogram } from "../core/checkpoint-histogram.ts";
import { buildRouter, compile, type Plan, type RoutedEvent, type SourcePlan } from "./plan.ts";

export interface WorkerOptions {
  readonly clock?: Clock;
  /** Checkpoint every this many ms (default 1000) ... */
  readonly checkpointMs?: number;
  /** ... or after this many events per actor (default 100,000), whichever comes first ... */
  readonly checkpointEvents?: number;
  /**
   * ... or when an actor's input paused this long with events not yet checkpointed, once a
   * quarter of `checkpointMs` passed since its last checkpoint began (default: a tenth of
   * `checkpointMs`; Infinity: never).
   */
  readonly idleCheckpointMs?: number;
  /**
   * Write changed result-table pages this often between checkpoints, in ms (default 100; 0: only
   * at checkpoints). Tables may run ahead of the committed checkpoint; state does not.
   */
  readonly tableFlushMs?: number;
  /** First restart delay of a failed actor (doubles per attempt). */
  readonly backoffMs?: number;
  /** Largest batch handed to the actors. */
  readonly maxBatch?: number;
  /** How often (by `clock`) steps with processing-time timers get a tick. Default 100 ms. */
  readonly tickMs?: number;
  /** Recent input records each actor keeps for inspection (default 20; 0: none). */
  readonly recentInputs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface ActorStatus {
  readonly step: string;
  readonly partition: number;
  readonly state: LifecycleState;
  readonly keys: number;
  readonly positions: Readonly<Record<string, number>>;
  readonly committed: Readonly<Record<string, number>>;
  readonly checkpoint: number;
  /** When the last committed checkpoint started (the worker's clock); null before the first. */
  readonly committedAt: number | null;
  readonly eventsIn: number;
  readonly outputs: number;
  readonly deadLetters: number;
  readonly lateEvents: number;
  /** Checkpoints committed since this process started, and the last one's duration and size. */
  readonly checkpoints: number;
  readonly lastCheckpointMs: number;
  readonly lastCheckpointBytes: number;
  /** Every checkpoint's duration and size since this process started (live, not a copy). */
  readonly checkpointHistogram: Readonly<CheckpointHistogram>;
  readonly error?: string;
}

/** A look inside one operator actor: a sample of its keyed state and its last inputs. */
export interface ActorInspection {
  readonly status: ActorStatus;
  /** Up to `sample` keys of its keyed state with their values, in the state's own order. */
  readonly sample: readonly { readonly key: unknown; readonly value: unknown }[];
  /** The last input records it applied, oldest first. */
  readonly recent: readonly { readonly seq: number; readonly key: unknown; readonly time: number; readonly value: unknown }[];
}

interface RunningActor {
  readonly step: string;
  readonly partition: number;
  readonly sources: readonly string[];
  readonly core: OperatorCore;
  readonly actor: OperatorActor;
  buffer: Rec[];
}

export class Worker {
  readonly plan: Plan;
  readonly #actors: RunningActor[] = [];
  readonly #byStep = new Map<string, RunningActor[]>();
  readonly #readers = new Map<string, Reader>();
  readonly #lookups = new Map<string, LookupReplica<unknown>>();
  readonly #idleTimers = new Map<string, unknown>();
  /** When a reader last handed over a full batch (it was behind). */
  #fullBatchAt = Number.NEGATIVE_INFINITY;
  /** Source-stage dead letters (decode errors, throwing stateless steps). */
  sourceDeadLetters = 0;
  #paused = false;
  #stopping = false;
  #resuming: Promise<void> | undefined;
  #flusher: TableFlusher | undefined;

  private constructor(
    readonly nc: NatsConnection,
    readonly pipeline: Pipeline,
    private readonly publisher: Publisher,
    private readonly options: WorkerOptions,
  ) {
    this.plan = compile(pipeline);
  }

  static async start(nc: NatsConnection, pipeline: Pipeline, options: WorkerOptions = {}): Promise<Worker> {
    const publisher = createPublisher(nc, options.clock ? { clock: options.clock } : {});
    const worker = new Worker(nc, pipeline, publisher, options);
    try {
      await worker.#prepare();
    } catch (error) {
      await publisher.close().catch(() => undefined);
      await Promise.all([...worker.#lookups.values()].map((l) => l.close()));
      throw error;
    }
    await worker.#startActors();
    await worker.#startReaders();
    return worker;
  }

  async #prepare(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    // Edges are deduplicated like sinks: a replay sends an output again under the same Nats-Msg-Id.
    for (const edge of this.plan.actors.flatMap((a) => [a.edge, a.lateEdge])) {
      if (edge) await ensureStream(this.nc, edge.stream, [edge.subject]);
    }
    for (const source of this.plan.sources) await checkSourceStream(jsm, source.stream);
    for (const lookup of this.plan.lookups) {
      const replica = await LookupReplica.open(
        this.nc,
        lookup.bucket,
        lookup.schema,
        (key, reason) => this.options.log?.("lookup-value-invalid", { lookup: lookup.id, bucket: lookup.bucket, key, reason }),
      );
      this.#lookups.set(lookup.id, replica);
    }
    await ensureSideStreams(jsm, this.pipeline.id);
    for (const { stream, subject } of this.plan.sinkStreams) {
      const info = await jsm.streams.info(stream).catch(() => undefined);
      if (!info) await ensureStream(this.nc, stream, [subject]);
      else if (!info.config.subjects?.some((s) => subjectMatches(s, subject))) {
        await jsm.streams.update(stream, { subjects: [...(info.config.subjects ?? []), subject] });
      }
    }
    for (const actor of this.plan.actors) {
      for (const table of actor.tables) {
        await createTable(this.nc, table, {
          step: actor.step,
          partitions: actor.partitions,
          ...(actor.windowed ? { windowed: true } : {}),
        });
      }
    }
  }

  async #startActors(): Promise<void> {
    const store = await CheckpointStore.open(this.nc, this.pipeline.id, this.publisher);
    const slots = new CheckpointSlots(2);
    const clock = this.options.clock ?? systemClock;
    const tableFlusher = new TableFlusher(clock, {
      intervalMs: this.options.tableFlushMs ?? 100,
      catchingUp: () => clock.now() - this.#fullBatchAt < 2 * (this.options.tableFlushMs ?? 100),
    });
    this.#flusher = tableFlusher;
    const sourceStreams = Object.fromEntries(this.plan.sources.map((s) => [s.id, s.stream]));
    const outputLog = natsOutputLog(this.nc);
    for (const plan of this.plan.actors) {
      const group: RunningActor[] = [];
      for (let partition = 0; partition < plan.partitions; partition++) {
        const { core, actor } = startOperatorActor({
          pipelineId: this.pipeline.id,
          step: plan.step,
          partition,
          operator: plan.createOperator(),
          sources: plan.sources,
          store,
          slots,
          tableFlusher,
          publisher: this.publisher,
          clock,
          tables: plan.tables,
          streams: plan.streams,
          outputLog,
          ...(plan.edge ? { edge: { id: plan.edge.id, subject: plan.edge.subject } } : {}),
          ...(plan.lateEdge ? { lateEdge: { id: plan.lateEdge.id, subject: plan.lateEdge.subject } } : {}),
          sourceStreams,
          ...(this.options.checkpointMs === undefined ? {} : { checkpointMs: this.options.checkpointMs }),
          ...(this.options.checkpointEvents === undefined ? {} : { checkpointEvents: this.options.checkpointEvents }),
          ...(this.options.idleCheckpointMs === undefined ? {} : { idleCheckpointMs: this.options.idleCheckpointMs }),
          ...(this.options.backoffMs === undefined ? {} : { backoffMs: this.options.backoffMs }),
          ...(this.options.tickMs === undefined ? {} : { tickMs: this.options.tickMs }),
          ...(this.options.recentInputs === undefined ? {} : { recentInputs: this.options.recentInputs }),
        });
        const running: RunningActor = { step: plan.step, partition, sources: plan.sources, core, actor, buffer: [] };
        actor.subscribe((snapshot) => this.#onActorState(running, snapshot.value as LifecycleState));
        group.push(running);
        this.#actors.push(running);
      }
      this.#byStep.set(plan.step, group);
    }
    await this.#whenAllRecovered();
  }

  async #whenAllRecovered(): Promise<void> {
    await Promise.all(
      this.#actors.map((a) =>
        waitFor(a.actor, (s) => s.matches("running") || s.matches("checkpointing") || s.matches("stopped"), { timeout: Infinity })
      ),
    );
  }

  #onActorState(actor: RunningActor, state: LifecycleState): void {
    if (state === "failed") {
      const error = actor.actor.getSnapshot().context.error;
      this.options.log?.("actor-failed", { step: actor.step, partition: actor.partition, error: String(error) });
      this.#pauseAndResume(0);
    }
  }

  /**
   * Stop reading; after `delayMs`, once every actor is running again, read again from the lowest
   * position. Used when an actor fails (it recovers after its backoff) and when a reader stops
   * by itself.
   */
  #pauseAndResume(delayMs: number): void {
    if (this.#paused || this.#stopping) return;
    this.#paused = true;
    this.#resuming = this.#resume(delayMs);
  }

  async #resume(delayMs: number): Promise<void> {
    await this.#stopReaders();
    if (delayMs > 0) await new Promise<void>((r) => (this.options.clock ?? systemClock).setTimeout(r, delayMs));
    await this.#whenAllRecovered();
    this.#paused = false;
    if (!this.#stopping) await this.#startReaders();
  }

  async #startReaders(): Promise<void> {
    for (const source of this.plan.sources) {
      const fed = this.#actors.filter((a) => a.sources.includes(source.id));
      const from = Math.min(...fed.map((a) => a.core.positions[source.id] ?? 0)) + 1;
      // The highest event time before `from`: the source's watermark there (the lowest an actor
      // holds) plus the allowed out-of-orderness. Watermarks then follow from the log alone.
      const watermark = Math.min(...fed.map((a) => a.core.watermarks[source.id] ?? Number.NEGATIVE_INFINITY));
      const handler = source.edge
        ? this.#edgeHandler(source, fed, watermark)
        : this.#batchHandler(source, fed, watermark + source.maxOutOfOrderMs);
      const onBatch = source.idleTimeoutMs === undefined ? handler : this.#watchIdle(source, fed, from - 1, handler);
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
          this.#pauseAndResume(this.options.backoffMs ?? 1000);
        },
      });
      this.#readers.set(source.id, reader);
      this.options.log?.("reading", { source: source.id, stream: source.stream, fromSeq: from });
    }
  }

  /**
   * A source with an idle timeout: when no batch came for that long, its actors hear that it is
   * idle (it stops holding their watermarks back) until its next batch.
   */
  #watchIdle(
    source: SourcePlan,
    fed: RunningActor[],
    position: number,
    handler: (messages: SourceMessage[]) => void,
  ): (messages: SourceMessage[]) => void {
    const clock = this.options.clock ?? systemClock;
    const timeout = source.idleTimeoutMs!;
    let lastActive = clock.now();
    let idle = false;
    const check = () => {
      if (!idle && clock.now() - lastActive >= timeout && !this.#paused) {
        idle = true;
        this.options.log?.("source-idle", { source: source.id, idleMs: clock.now() - lastActive });
        for (const a of fed) {
          a.actor.send({
            type: "batch",
            batch: { source: source.id, records: [], upTo: position, watermark: Number.NEGATIVE_INFINITY, idle: true },
          });
        }
      }
      this.#idleTimers.set(source.id, clock.setTimeout(check, Math.max(1, timeout / 4)));
    };
    this.#idleTimers.set(source.id, clock.setTimeout(check, Math.max(1, timeout / 4)));
    return (messages) => {
      lastActive = clock.now();
      idle = false;
      position = messages[messages.length - 1]!.seq;
      handler(messages);
    };
  }

  /** Hand each actor its records of a batch, and the position and watermark the batch reached. */
  #deliver(source: SourcePlan, fed: RunningActor[], upTo: number, watermark: number, size: number): void {
    // A full batch: the reader is behind its stream (catching up).
    if (size >= (this.options.maxBatch ?? defaultMaxBatch)) this.#fullBatchAt = (this.options.clock ?? systemClock).now();
    for (const a of fed) {
      const records = a.buffer;
      a.buffer = [];
      a.actor.send({ type: "batch", batch: { source: source.id, records, upTo, watermark } });
    }
  }

  /** What to do with a failing stateless step, or an undecodable event: a dead letter. */
  #setAside(source: SourcePlan): SetAside {
    const pipelineId = this.pipeline.id;
    return (step, seq, reason, data) => {
      this.sourceDeadLetters++;
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

  #router(source: SourcePlan, event: RoutedEvent, current: () => SourceMessage): (value: unknown, seq: number) => void {
    const lookups = this.#lookups;
    const setAside = this.#setAside(source);
    return buildRouter(source, this.plan, event, {
      lookup: (table, key) => lookups.get(table)!.get(key),
      buffer: (step, partition, rec) => {
        this.#byStep.get(step)![partition]!.buffer.push(rec);
      },
      fail: (step, seq, reason) => setAside(step, seq, reason, current().data),
    });
  }

  /**
   * The loop every source's reading shares: decode each message (a dead letter when it cannot
   * be), let `take` set the event's time and watermark and route it, then hand each actor its
   * records with the position and watermark the batch reached.
   */
  #reading(
    source: SourcePlan,
    fed: RunningActor[],
    event: RoutedEvent,
    take: (value: unknown, m: SourceMessage, route: (value: unknown, seq: number) => void, setAside: SetAside) => void,
    watermark: () => number,
  ): (messages: SourceMessage[]) => void {
    let current: SourceMessage | undefined;
    const route = this.#router(source, event, () => current!);
    const setAside = this.#setAside(source);
    return (messages) => {
      if (this.#paused) return;
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
  #edgeHandler(source: SourcePlan, fed: RunningActor[], restartWatermark: number): (messages: SourceMessage[]) => void {
    const partitions = new Array<number>(source.edge!.partitions).fill(restartWatermark);
    const event = { time: Number.NaN, watermark: restartWatermark };
    const updating = source.edge!.updating;
    let low = restartWatermark;
    return this.#reading(source, fed, event, (value, m, route) => {
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
  #batchHandler(source: SourcePlan, fed: RunningActor[], maxEventTime: number): (messages: SourceMessage[]) => void {
    const { eventTime, maxOutOfOrderMs } = source;
    const event = { time: Number.NaN, watermark: Number.NEGATIVE_INFINITY };
    return this.#reading(source, fed, event, (value, m, route, setAside) => {
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

  async #stopReaders(): Promise<void> {
    for (const handle of this.#idleTimers.values()) (this.options.clock ?? systemClock).clearTimeout(handle);
    this.#idleTimers.clear();
    const readers = [...this.#readers.values()];
    this.#readers.clear();
    await Promise.all(readers.map((r) => r.stop()));
    for (const a of this.#actors) a.buffer = [];
  }

  /** Stop reading, checkpoint every actor one last time, and stop them. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await this.#resuming;
    await this.#stopReaders();
    this.#flusher?.stop();
    for (const a of this.#actors) a.actor.send({ type: "stop" });
    await Promise.all(this.#actors.map((a) => waitFor(a.actor, (s) => s.status === "done", { timeout: Infinity })));
    await this.publisher.close();
    await Promise.all([...this.#lookups.values()].map((l) => l.close()));
  }

  /** Every operator actor: its lifecycle state, keys, positions. */
  status(): ActorStatus[] {
    return this.#actors.map((a) => this.#statusOf(a));
  }

  /** A sample of one actor's keyed state (at most `sample` keys) and its recent inputs. */
  inspect(step: string, partition: number, sample: number): ActorInspection | undefined {
    const a = this.#byStep.get(step)?.[partition];
    if (!a) return undefined;
    const taken: { key: unknown; value: unknown }[] = [];
    if (sample > 0) {
      for (const [key, value] of a.core.state.entries()) {
        taken.push({ key, value });
        if (taken.length >= sample) break;
      }
    }
    const recent = a.core.recent.list().map((r) => ({ seq: r.seq, key: r.key, time: r.time, value: r.value }));
    return { status: this.#statusOf(a), sample: taken, recent };
  }

  #statusOf(a: RunningActor): ActorStatus {
    const manifest = a.core.manifest;
    const error = a.actor.getSnapshot().context.error;
    return {
      step: a.step,
      partition: a.partition,
      state: lifecycleState(a.actor),
      keys: a.core.state.size,
      positions: { ...a.core.positions },
      committed: { ...(manifest?.positions ?? {}) },
      checkpoint: manifest?.checkpoint ?? 0,
      committedAt: manifest && manifest.checkpoint > 0 ? manifest.committedAt : null,
      eventsIn: a.core.metrics.eventsIn,
      outputs: a.core.metrics.outputs,
      deadLetters: a.core.metrics.deadLetters,
      lateEvents: a.core.metrics.lateEvents,
      checkpoints: a.core.metrics.checkpoints,
      lastCheckpointMs: a.core.metrics.lastCheckpointMs,
      lastCheckpointBytes: a.core.metrics.lastCheckpointBytes,
      checkpointHistogram: a.core.metrics.checkpointHistogram,
      ...(error === undefined ? {} : { error: String(error) }),
    };
  }

  /**
   * Per source (edges included), how many of its messages are not yet in a committed checkpoint
   * of every actor it feeds. All zero: the pipeline has caught up with its input.
   */
  async lag(): Promise<Record<string, number>> {
    const lag: Record<string, number> = {};
    for (const source of this.plan.sources) {
      // A source with a subject filter ends at the last message on its subjects.
      const last = await lastSequence(this.nc, source.stream, source.subject);
      lag[source.id] = Math.max(0, last - this.committedPosition(source.id));
    }
    return lag;
  }

  /** The lowest committed position of a source over all actors it feeds. */
  committedPosition(source: string): number {
    const fed = this.#actors.filter((a) => a.sources.includes(source));
    return Math.min(...fed.map((a) => a.core.manifest?.positions[source] ?? 0));
  }
}

/** Set an event aside as a dead letter of `step`, with the reason and its original bytes. */
type SetAside = (step: string, seq: number, reason: string, data: Uint8Array) => void;

function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
