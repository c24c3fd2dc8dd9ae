/**
 * An operator actor: one per (step, partition). It owns the partition's keyed state, its input
 * positions and its timers, runs the operator over each batch, and hands what comes out to the
 * parts named after what they do: outputs (actors/outputs.ts: stream sinks, edge, output ids),
 * the watermark (actors/watermarks.ts), what is set aside (actors/set-aside.ts), the result tables
 * (actors/table-writer.ts) and the checkpoint write protocol (src/state/checkpoint-write.ts). The
 * lifecycle machine (actors/lifecycle.ts) decides when each of its steps runs.
 *
 * @example
 * const { core, actor } = startOperatorActor({ pipelineId: "shop", step: "revenue", partition: 0, operator, store, publisher, clock });
 * actor.send({ type: "batch", batch: { source: "orders", records, from: 1, upTo: 42, watermark } });
 */
import { type Actor, createActor } from "xstate";
import { CheckpointHistogram } from "../src/core/checkpoint-histogram.ts";
import type { Clock } from "../src/core/clock.ts";
import { FencedError, PublishError } from "../src/core/errors.ts";
import type { Key } from "../src/core/partition.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { OutputLog } from "../src/log/record-batch.ts";
import type { CheckpointSlots, CheckpointStore, Manifest } from "../src/state/checkpoint.ts";
import { writeCheckpoint } from "../src/state/checkpoint-write.ts";
import { type ChunkSnapshot, KeyedState } from "../src/state/keyed-state.ts";
import { EdgeOutput, type EdgePlan } from "./edge-output.ts";
import { type ActorCore, operatorLifecycle } from "./lifecycle.ts";
import type { Batch, EmitOptions, Operator, OperatorContext, Timers } from "./operator.ts";
import { Outputs, type StreamSinkPlan } from "./outputs.ts";
import { RecentInputs } from "./recent-inputs.ts";
import { SetAside } from "./set-aside.ts";
import { type TableRows, TableWriter } from "./table-writer.ts";
import { EventTimers } from "./timers.ts";
import { InputWatermarks } from "./watermarks.ts";

export interface OperatorActorOptions<S = unknown, Out = unknown> {
  readonly pipelineId: string;
  readonly step: string;
  readonly partition: number;
  readonly operator: Operator<S, Out>;
  readonly store: CheckpointStore;
  readonly publisher: Publisher;
  readonly clock: Clock;
  /** Result tables fed by this step, and where their rows come from. */
  readonly tables?: readonly string[];
  readonly rows?: TableRows<S, Out>;
  /** Stream sinks fed by this step. */
  readonly streams?: readonly StreamSinkPlan[];
  /** Where a batched stream sink reads back what it published (required if a sink is batched). */
  readonly outputLog?: OutputLog;
  /** The edge to the steps that read this one (their own actors, maybe in other processes). */
  readonly edge?: EdgePlan;
  /** The edge to the steps that read the events this step found late. */
  readonly lateEdge?: EdgePlan;
  /** Source id to its stream name, for dead letters. */
  readonly sourceStreams?: Readonly<Record<string, string>>;
  /** The sources whose events reach this step: its watermark is the lowest of theirs. */
  readonly sources?: readonly string[];
  /** Shared by the actors of a worker: how many write a checkpoint at once. */
  readonly slots?: CheckpointSlots;
  readonly checkpointMs?: number;
  readonly checkpointEvents?: number;
  /** Checkpoint when no batch came for this long (default: a tenth of `checkpointMs`). */
  readonly idleCheckpointMs?: number;
  readonly backoffMs?: number;
  /** How often an operator with processing-time timers (`onClock`) gets a tick. Default 100 ms. */
  readonly tickMs?: number;
  /** How many recent input records to keep for inspection (default 20; 0: none). */
  readonly recentInputs?: number;
}

export interface OperatorMetrics {
  eventsIn: number;
  checkpoints: number;
  lastCheckpointMs: number;
  lastCheckpointBytes: number;
  /** Every checkpoint's duration and size (for /metrics). */
  readonly checkpointHistogram: CheckpointHistogram;
}

/** The work behind an operator actor's lifecycle. */
export class OperatorActor<S = unknown, Out = unknown> implements ActorCore {
  state: KeyedState<S>;
  /** Per source, the last sequence folded into `state` (ahead of the committed manifest). */
  positions: Record<string, number> = {};
  readonly watermarks: InputWatermarks;
  /** The last input records applied (references), for inspection. */
  readonly recent: RecentInputs;
  readonly metrics: OperatorMetrics = {
    eventsIn: 0,
    checkpoints: 0,
    lastCheckpointMs: 0,
    lastCheckpointBytes: 0,
    checkpointHistogram: new CheckpointHistogram(),
  };
  readonly outputs: Outputs<Out>;
  readonly setAside: SetAside;
  readonly tables: TableWriter<S, Out>;
  readonly #timers = new EventTimers();
  readonly #clockTimers = new EventTimers();
  readonly #timed: boolean;
  #manifest: Manifest | undefined;
  #revision = 0;
  /** The next checkpoint writes every chunk whole (after a recovery, or a split). */
  #rewriteAll = true;
  /** Something changed since the last checkpoint's cut. */
  #changed = false;
  /**
   * Set while a batch (or an idle source's or a tick's timers) is applied, and left set when it
   * threw midway: the state then holds part of its effect and the position none of it, so no
   * checkpoint may be cut from it until a recovery replaces it.
   */
  #torn = false;
  #source = "";
  /** The event time of the cause at hand (an output's, by default). */
  #time = Number.NaN;
  readonly #ctx: OperatorContext<S, Out>;

  constructor(readonly options: OperatorActorOptions<S, Out>) {
    const { publisher, pipelineId, partition, step, operator, clock } = options;
    this.state = this.#newState(0);
    this.watermarks = new InputWatermarks(options.sources ?? []);
    this.recent = new RecentInputs(options.recentInputs ?? 20);
    this.#timed = operator.onTimer !== undefined;
    this.setAside = new SetAside(publisher, { pipelineId, step, sourceStreams: options.sourceStreams });
    this.tables = new TableWriter(publisher, {
      partition,
      tables: options.tables ?? [],
      rows: options.rows ?? { of: "state", row: (key, state) => ({ key, state }) },
      nc: options.store.nc,
    });
    const edge = new EdgeOutput(publisher, clock, {
      pipelineId,
      partition,
      edge: options.edge,
      lateEdge: options.lateEdge,
      fail: (value, reason) => this.setAside.failed(this.outputs.cause, value, reason),
    });
    this.outputs = new Outputs<Out>(
      publisher,
      { pipelineId, streams: options.streams ?? [], source: (options.sources ?? [])[0] },
      edge,
      options.rows?.of === "outputs" && this.tables.active ? (this.tables as TableWriter<unknown, Out>) : undefined,
    );
    const timers: Timers = {
      at: (key, time) => this.#timers.add(time, key),
      atClock: (key, time) => this.#clockTimers.add(time, key),
    };
    const self = this;
    this.#ctx = {
      get state() {
        return self.state;
      },
      get watermark() {
        return self.watermarks.last;
      },
      get source() {
        return self.#source;
      },
      timers,
      now: () => clock.now(),
      emit: (output: Out | undefined, options?: EmitOptions<Out>) =>
        this.outputs.emit(output, options?.before, options?.time ?? this.#time, options?.from),
      fail: (value, reason) => this.setAside.failed(this.outputs.cause, value, reason),
      late: (rec, reason) => {
        this.setAside.late(this.#source, rec, reason);
        this.outputs.edge.sendLate(this.#source, rec);
      },
    };
  }

  #newState(chunkBits: number): KeyedState<S> {
    return new KeyedState<S>(chunkBits, undefined, undefined, this.options.operator.stateLayout);
  }

  /** The actor's event-time watermark. */
  get watermark(): number {
    return this.watermarks.value;
  }

  /** The last committed checkpoint, once recovered. */
  get manifest(): Manifest | undefined {
    return this.#manifest;
  }

  async recover(): Promise<void> {
    const { store, step, partition, clock, operator, outputLog } = this.options;
    const recovered = await store.recover(step, partition, clock.now());
    const state = this.#newState(recovered.manifest.chunkBits);
    for (const chunk of recovered.chunks) state.loadRecords(chunk.index, chunk.base, chunk.deltas);
    this.state = state;
    this.#manifest = recovered.manifest;
    this.#revision = recovered.revision;
    this.positions = { ...recovered.manifest.positions };
    this.watermarks.reset(recovered.manifest.watermarks);
    this.setAside.deadLetters = recovered.manifest.counters.deadLetters ?? 0;
    this.setAside.lateEvents = recovered.manifest.counters.lateEvents ?? 0;
    this.#timers.clear();
    this.#clockTimers.clear();
    if (operator.rearm) {
      const timers: Timers = {
        at: (key, time) => this.#timers.add(time, key),
        atClock: (key, time) => this.#clockTimers.add(time, key),
      };
      for (const [key, value] of state.entries()) operator.rearm(timers, key, value);
    }
    const starts = await this.outputs.recover(outputLog, recovered.manifest);
    if (starts) {
      const next: Manifest = { ...recovered.manifest, outputs: { ...recovered.manifest.outputs, ...starts } };
      this.#revision = await store.commit(step, partition, next, this.#revision);
      this.#manifest = next;
    }
    await this.tables.recover(recovered.manifest);
    this.#rewriteAll = true;
    this.#changed = false;
    this.#torn = false;
  }

  /** Fold a batch into state: the records not applied before. */
  process(batch: Batch): void {
    const { source } = batch;
    this.watermarks.setIdle(source, false);
    const applied = this.positions[source] ?? 0;
    if (batch.upTo <= applied) return;
    // A batch from further on than this actor's position: it recovered (its position went back to
    // its checkpoint) while a reader that did not start again for it read on, and the records in
    // between never reached it. Taking this batch would skip them for good; the worker reads again
    // from the lowest position once the actor runs again (it heard of the failure).
    if (batch.from > applied + 1) return;
    this.#source = source;
    const { operator } = this.options;
    const ctx = this.#ctx;
    const outputs = this.outputs;
    const timed = this.#timed;
    let n = 0;
    const torn = this.#torn;
    this.#torn = true;
    outputs.open(applied, source);
    const records = batch.records;
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      if (rec.seq <= applied) continue;
      n++;
      if (timed && this.watermarks.advance(source, rec.watermark)) this.#fireTimers();
      outputs.forRecord(source, rec);
      this.#time = rec.time;
      try {
        operator.apply(ctx, rec);
      } catch (error) {
        if (notTheRecords(error)) throw error;
        this.setAside.deadLetter(source, rec, error);
      }
      outputs.afterRecord(rec.seq, records[i + 1]?.seq);
    }
    outputs.close(batch.upTo);
    this.recent.record(batch.records, applied);
    if (this.watermarks.advance(source, batch.watermark) && timed) this.#fireTimers();
    if (batch.writers) this.watermarks.setWriters(source, batch.writers);
    this.positions[source] = batch.upTo;
    this.#torn = torn;
    this.#changed = true;
    this.metrics.eventsIn += n;
    this.#sendWatermark(false);
  }

  /** A source has been idle for its timeout: until its next batch, it does not hold the watermark back. */
  idle(source: string): void {
    if (!this.watermarks.setIdle(source, true)) return;
    const torn = this.#torn;
    this.#torn = true;
    if (this.#timed) this.#fireTimers();
    this.#torn = torn;
    this.#sendWatermark(false);
  }

  /** Fire the event-time timers the watermark reached, in time order. */
  #fireTimers(): void {
    const { operator } = this.options;
    const ctx = this.#ctx;
    this.#timers.fireDue(this.watermarks.last, (time, key) => {
      this.outputs.forTimer(key, time, false);
      this.#time = time;
      this.#onTimer(() => operator.onTimer!(ctx, key, time), key, time);
    });
  }

  /** Processing time moved on: fire the clock timers it passed. */
  tick(): void {
    const { operator, clock } = this.options;
    if (!operator.onClock) return;
    const ctx = this.#ctx;
    const torn = this.#torn;
    this.#torn = true;
    this.#clockTimers.fireDue(clock.now(), (time, key) => {
      this.outputs.forTimer(key, time, true);
      this.#time = this.watermarks.last;
      this.#onTimer(() => operator.onClock!(ctx, key, time), key, time);
    });
    this.#torn = torn;
    if (this.state.changed) this.#changed = true;
  }

  /** A timer's handler threw (a bug of the operator's; a user function's throw is the operator's to report): a dead letter. */
  #onTimer(fire: () => void, key: Key, time: number): void {
    try {
      fire();
    } catch (error) {
      if (notTheRecords(error)) throw error;
      this.setAside.failed(this.outputs.cause, { key, time }, `timer at ${time} threw: ${(error as Error)?.message ?? error}`);
    }
  }

  /** Tell the steps reading the edge how far this partition's watermark got. */
  #sendWatermark(force: boolean): void {
    this.outputs.edge.sendWatermark(this.watermarks.last - (this.options.operator.watermarkDelayMs ?? 0), force);
  }

  /** Write the table pages of the chunks changed since their last write (between checkpoints). */
  flushTables(): void {
    const committed = this.#manifest;
    if (committed) this.tables.flush(this.state, committed, this.options.clock.now());
  }

  async checkpoint(): Promise<void> {
    if (!this.#changed && !this.#rewriteAll) return;
    const slots = this.options.slots;
    await slots?.acquire();
    try {
      await this.#checkpoint();
    } finally {
      slots?.release();
    }
  }

  async #checkpoint(): Promise<void> {
    const committed = this.#manifest;
    if (!committed) throw new Error("checkpoint before recovery");
    // A checkpoint waits for its slot, and meanwhile its actor may have failed in a batch (an
    // output refused: the worker lost the right to write) and been left or stopped: that
    // checkpoint still runs, and must not commit a state ahead of its positions.
    if (this.#torn) throw new Error(`${this.options.step}.${this.options.partition}: a batch failed midway; recover first`);
    this.#sendWatermark(true);
    const { store, publisher, step, partition, clock } = this.options;
    const at = clock.now();
    // Up to the first await: a consistent cut of state and positions. Values are replaced, never
    // changed in place, so the cut stays valid while records flow on.
    const rewriteAll = this.#rewriteAll;
    const state = this.state;
    if (rewriteAll) state.touchAll();
    const chunks = state.snapshotDirty();
    const cut = {
      chunks,
      chunkBits: state.chunkBits,
      keys: state.size,
      rewriteAll,
      positions: { ...this.positions },
      watermarks: this.watermarks.finite(),
      counters: { deadLetters: this.setAside.deadLetters, lateEvents: this.setAside.lateEvents },
      at,
      outputs: this.outputs.cut(),
      release: (chunk: ChunkSnapshot<unknown>) => state.release(chunk as ChunkSnapshot<S>),
    };
    const companions = this.tables.cut(state, { at, checkpoint: committed.checkpoint + 1 }, committed.chunkBits, rewriteAll);
    this.#rewriteAll = false;
    this.#changed = false;
    const outcome = await writeCheckpoint(
      store,
      publisher,
      { step, partition, committed, revision: this.#revision },
      cut,
      companions,
    );
    if (outcome.kind === "split") {
      // A chunk too large in bytes for one message: split the chunks, and write the new layout whole next time.
      this.state.splitChunks();
      this.#rewriteAll = true;
      this.#changed = true;
      return;
    }
    this.#manifest = outcome.manifest;
    this.#revision = outcome.revision;
    this.metrics.checkpoints++;
    this.metrics.lastCheckpointBytes = outcome.bytes;
    this.metrics.lastCheckpointMs = clock.now() - at;
    this.metrics.checkpointHistogram.observe(this.metrics.lastCheckpointMs / 1000, outcome.bytes);
  }
}

export type OperatorActorRef = Actor<typeof operatorLifecycle>;

/** Create and start an operator actor; it recovers its partition, then runs. */
export function startOperatorActor<S, Out>(
  options: OperatorActorOptions<S, Out>,
): { core: OperatorActor<S, Out>; actor: OperatorActorRef } {
  const core = new OperatorActor(options);
  const checkpointMs = options.checkpointMs ?? 1000;
  const actor = createActor(operatorLifecycle, {
    input: {
      core,
      clock: options.clock,
      checkpointMs,
      checkpointEvents: options.checkpointEvents ?? 100_000,
      idleCheckpointMs: options.idleCheckpointMs ?? checkpointMs / 10,
      ...(options.backoffMs === undefined ? {} : { backoffMs: options.backoffMs }),
      ...(options.operator.onClock ? { tickMs: options.tickMs ?? 100 } : {}),
    },
    clock: options.clock,
  });
  actor.start();
  return { core, actor };
}

/** A write this worker may not or cannot make: the actor fails and recovers; the record is not to blame. */
function notTheRecords(error: unknown): boolean {
  return error instanceof FencedError || error instanceof PublishError;
}
