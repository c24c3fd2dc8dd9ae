/**
 * An operator actor: one per (step, partition). It owns the partition's keyed state, its input
 * positions and its outputs, and runs them through the shared lifecycle machine. Checkpoints
 * write, pipelined and acknowledged together: each state chunk that changed and the result-table
 * page of the same keys, then the manifest by compare-and-set. Outputs to streams and dead
 * letters are published as records are processed and are acknowledged before the manifest that
 * moves past them is committed.
 *
 * @example
 * const actor = startOperatorActor({ pipelineId: "shop", step: "revenue", partition: 0, operator, store, publisher, clock });
 * actor.send({ type: "batch", batch: { source: "orders", records, upTo: 42 } });
 */
import { type Actor, createActor } from "xstate";
import { publishSideOutput } from "../src/log/side-outputs.ts";
import { kvSubject, type Publisher } from "../src/log/publisher.ts";
import type { Key } from "../src/pipeline/partition.ts";
import { tableBucket } from "../src/pipeline/pipeline.ts";
import { type Clock, nextTurn } from "../src/runtime/clock.ts";
import type { CheckpointSlots, CheckpointStore, Manifest } from "../src/state/checkpoint.ts";
import { encodeChunk, KeyedState } from "../src/state/keyed-state.ts";
import { encodePage, indexKey, pageKey } from "../src/state/table.ts";
import { type ActorCore, type LifecycleState, operatorLifecycle } from "./lifecycle.ts";
import type { Batch, Operator, OperatorContext, Rec } from "./operator.ts";

const encoder = new TextEncoder();

export interface OperatorActorOptions {
  readonly pipelineId: string;
  readonly step: string;
  readonly partition: number;
  readonly operator: Operator;
  readonly store: CheckpointStore;
  readonly publisher: Publisher;
  readonly clock: Clock;
  /** Result tables fed by this step. */
  readonly tables?: readonly string[];
  /** Stream sinks fed by this step: sink step id and subject. */
  readonly streams?: readonly { readonly id: string; readonly subject: string }[];
  /** Source id to its stream name, for dead letters. */
  readonly sourceStreams?: Readonly<Record<string, string>>;
  /** The sources whose events reach this step: its watermark is the lowest of theirs. */
  readonly sources?: readonly string[];
  /** Shared by the actors of a worker: how many write a checkpoint at once. */
  readonly slots?: CheckpointSlots;
  readonly checkpointMs?: number;
  readonly checkpointEvents?: number;
  readonly backoffMs?: number;
  /** How often an operator with processing-time timers (`onTime`) gets a tick. Default 100 ms. */
  readonly tickMs?: number;
}

export interface OperatorMetrics {
  eventsIn: number;
  outputs: number;
  deadLetters: number;
  lateEvents: number;
  checkpoints: number;
  lastCheckpointMs: number;
  lastCheckpointBytes: number;
}

/** The work behind an operator actor's lifecycle. */
export class OperatorCore implements ActorCore {
  state = new KeyedState<unknown>();
  /** Per source, the last sequence folded into `state` (ahead of the committed manifest). */
  positions: Record<string, number> = {};
  /** Per source, its watermark as of `positions`. */
  watermarks: Record<string, number> = {};
  eventsSinceCheckpoint = 0;
  readonly metrics: OperatorMetrics = {
    eventsIn: 0,
    outputs: 0,
    deadLetters: 0,
    lateEvents: 0,
    checkpoints: 0,
    lastCheckpointMs: 0,
    lastCheckpointBytes: 0,
  };
  #manifest: Manifest | undefined;
  #revision = 0;
  #rewriteAll = true;
  #positionsChanged = false;
  #source = "";
  readonly #ctx: OperatorContext;
  readonly #tableBuckets: string[];
  /** Table rows kept by an operator that owns them (key to row key to row), and their layout. */
  #rows: KeyedState<Record<string, unknown>> | undefined;
  #rowBits: number | undefined;

  constructor(readonly options: OperatorActorOptions) {
    this.#tableBuckets = (options.tables ?? []).map(tableBucket);
    const streams = options.streams ?? [];
    const { publisher, pipelineId } = options;
    const self = this;
    this.#ctx = {
      get state() {
        return self.state;
      },
      get watermark() {
        return self.watermark;
      },
      get source() {
        return self.#source;
      },
      now: () => options.clock.now(),
      emit: (id, output) => {
        const bytes = encoder.encode(JSON.stringify(output));
        for (const sink of streams) {
          publisher.publish(sink.subject, bytes, { msgId: `${pipelineId}/${sink.id}/${id}` });
          this.metrics.outputs++;
        }
      },
      fail: (id, value, reason) => {
        this.metrics.deadLetters++;
        publishSideOutput(publisher, pipelineId, "dlq", {
          step: options.step,
          source: id,
          sourceStream: "",
          sourceSeq: 0,
          reason: `step "${options.step}": ${reason}`,
          data: encoder.encode(JSON.stringify(value) ?? "null"),
        });
      },
      late: (rec, reason) => {
        this.metrics.lateEvents++;
        this.#setAside("late", rec, reason);
      },
      putRow: (key, hash, rowKey, row) => {
        const rows = this.#rows;
        if (rows) rows.set(key, hash, { ...rows.get(key, hash), [rowKey]: row });
      },
    };
  }

  /** The event-time watermark of this actor: the lowest over its sources. */
  get watermark(): number {
    let low = Number.POSITIVE_INFINITY;
    for (const source of this.options.sources ?? []) low = Math.min(low, this.watermarks[source] ?? Number.NEGATIVE_INFINITY);
    return low === Number.POSITIVE_INFINITY ? Number.NEGATIVE_INFINITY : low;
  }

  /** The last committed checkpoint, once recovered. */
  get manifest(): Manifest | undefined {
    return this.#manifest;
  }

  async recover(): Promise<void> {
    const { store, step, partition, clock } = this.options;
    const recovered = await store.recover(step, partition, clock.now());
    const state = new KeyedState<unknown>(recovered.manifest.chunkBits);
    for (const [index, bytes] of recovered.chunks) state.loadChunk(index, bytes);
    this.state = state;
    this.#manifest = recovered.manifest;
    this.#revision = recovered.revision;
    this.positions = { ...recovered.manifest.positions };
    this.watermarks = { ...recovered.manifest.watermarks };
    this.metrics.deadLetters = recovered.manifest.counters.deadLetters ?? 0;
    this.metrics.lateEvents = recovered.manifest.counters.lateEvents ?? 0;
    this.options.operator.restore?.(state);
    if (this.options.operator.ownsRows && this.#tableBuckets.length > 0) {
      const written = await store.readTablePages(this.#tableBuckets[0]!, partition);
      const rows = new KeyedState<Record<string, unknown>>(written?.chunkBits ?? 0);
      for (const [index, page] of written?.pages ?? []) {
        const chunk = new Map<Key, Record<string, unknown>>();
        for (const [rowKey, row] of page.rows) {
          const key = (row as { key: Key }).key;
          chunk.set(key, { ...chunk.get(key), [rowKey]: row });
        }
        rows.loadEntries(index, chunk);
      }
      this.#rows = rows;
      this.#rowBits = written?.chunkBits;
    }
    this.#rewriteAll = true;
    this.#positionsChanged = false;
    this.eventsSinceCheckpoint = 0;
  }

  process(batch: Batch): void {
    const applied = this.positions[batch.source] ?? 0;
    if (batch.upTo <= applied) return;
    this.#source = batch.source;
    const { operator } = this.options;
    const ctx = this.#ctx;
    let n = 0;
    const advance = operator.advance;
    for (const rec of batch.records) {
      if (rec.seq <= applied) continue;
      n++;
      if (advance) this.#advanceTo(batch.source, rec.watermark);
      try {
        operator.apply(ctx, rec);
      } catch (error) {
        this.#deadLetter(batch.source, rec, error);
      }
    }
    if (advance) this.#advanceTo(batch.source, batch.watermark);
    else this.watermarks[batch.source] = Math.max(this.watermarks[batch.source] ?? Number.NEGATIVE_INFINITY, batch.watermark);
    this.positions[batch.source] = batch.upTo;
    this.#positionsChanged = true;
    this.metrics.eventsIn += n;
    this.eventsSinceCheckpoint += n;
  }

  /** Processing time moved on: let the operator fire its processing-time timers. */
  tick(): void {
    const { operator, clock } = this.options;
    if (!operator.onTime) return;
    operator.onTime(this.#ctx, clock.now());
    if (this.state.changed) this.#positionsChanged = true;
  }

  /** Move a source's watermark forward; if the actor's watermark moved, let the operator fire. */
  #advanceTo(source: string, watermark: number): void {
    const before = this.watermarks[source] ?? Number.NEGATIVE_INFINITY;
    if (watermark <= before) return;
    const low = this.watermark;
    this.watermarks[source] = watermark;
    if (this.watermark > low) this.options.operator.advance!(this.#ctx);
  }

  #deadLetter(source: string, rec: Rec, error: unknown): void {
    this.metrics.deadLetters++;
    this.#setAside(
      "dlq",
      rec,
      `step "${this.options.step}" threw on key ${JSON.stringify(rec.key)}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      source,
    );
  }

  #setAside(kind: "dlq" | "late", rec: Rec, reason: string, source = this.#source): void {
    const { publisher, pipelineId, step, sourceStreams } = this.options;
    let data: Uint8Array;
    try {
      data = encoder.encode(JSON.stringify(rec.value));
    } catch {
      data = encoder.encode(String(rec.value));
    }
    publishSideOutput(publisher, pipelineId, kind, {
      step,
      source,
      sourceStream: sourceStreams?.[source] ?? source,
      sourceSeq: rec.seq,
      reason,
      data,
    });
  }

  async checkpoint(): Promise<void> {
    if (!this.#positionsChanged && !this.#rewriteAll) return;
    const slots = this.options.slots;
    if (!slots) return this.#checkpoint();
    await slots.acquire();
    try {
      await this.#checkpoint();
    } finally {
      slots.release();
    }
  }

  async #checkpoint(): Promise<void> {
    const committed = this.#manifest;
    if (!committed) throw new Error("checkpoint before recovery");
    const { store, publisher, step, partition, operator, clock } = this.options;
    const started = clock.now();
    // Up to the first await: a consistent snapshot of state and positions. Values are
    // replaced, never changed in place, so the snapshot stays valid while records flow on.
    const rewriteAll = this.#rewriteAll;
    if (rewriteAll) this.state.touchAll();
    const state = this.state;
    const chunks = state.snapshotDirty();
    const chunkBits = this.state.chunkBits;
    const rowState = this.#rows;
    const rowChunks = rowState?.snapshotDirty() ?? [];
    const rowBits = this.#rows?.chunkBits;
    const previousRowBits = this.#rowBits;
    const positions = { ...this.positions };
    // -Infinity (no event time yet) does not survive JSON: leave such sources out.
    const watermarks = Object.fromEntries(Object.entries(this.watermarks).filter(([, w]) => Number.isFinite(w)));
    const keys = this.state.size;
    const counters = { deadLetters: this.metrics.deadLetters, lateEvents: this.metrics.lateEvents };
    const checkpoint = committed.checkpoint + 1;
    this.#rewriteAll = false;
    this.#positionsChanged = false;
    this.eventsSinceCheckpoint = 0;

    // Then the writes, a chunk at a time, with bounded memory: each changed chunk and its table
    // pages; the table's page layout when it changed; then the manifest.
    let bytes = 0;
    const chunkKeys: Record<string, string> = chunkBits === committed.chunkBits ? { ...committed.chunks } : {};
    for (const chunk of chunks) {
      const encoded = encodeChunk(chunk);
      const key = store.nextChunkKey(step, partition, committed, chunkBits, chunk.index);
      store.writeChunk(key, encoded);
      chunkKeys[chunk.index] = key;
      bytes += encoded.length;
      if (this.#tableBuckets.length > 0 && !operator.ownsRows) {
        const rows: [Key, unknown][] = [];
        for (const [k, state] of chunk.entries) rows.push([k, operator.row(k, state)]);
        const page = encodePage({ at: started, checkpoint, rows });
        for (const bucket of this.#tableBuckets) {
          publisher.publish(kvSubject(bucket, pageKey(partition, chunkBits, chunk.index)), page);
        }
        bytes += page.length * this.#tableBuckets.length;
      }
      state.release(chunk);
      await publisher.whenPendingBelow(maxPendingWrites);
      await nextTurn();
    }
    // Pages of rows the operator keeps itself, by their own layout.
    for (const chunk of rowChunks) {
      const rows: [Key, unknown][] = [];
      for (const byRowKey of chunk.entries.values()) rows.push(...Object.entries(byRowKey));
      const page = encodePage({ at: started, checkpoint, rows });
      for (const bucket of this.#tableBuckets) {
        publisher.publish(kvSubject(bucket, pageKey(partition, rowBits!, chunk.index)), page);
      }
      bytes += page.length * this.#tableBuckets.length;
      rowState!.release(chunk);
      await publisher.whenPendingBelow(maxPendingWrites);
      await nextTurn();
    }
    const relayout = rewriteAll || chunkBits !== committed.chunkBits;
    const pageBits = operator.ownsRows ? rowBits : chunkBits;
    const pagesRelayout = operator.ownsRows ? rowBits !== previousRowBits && rowChunks.length > 0 : relayout;
    if (pagesRelayout && pageBits !== undefined) {
      const index = encoder.encode(JSON.stringify({ chunkBits: pageBits }));
      for (const bucket of this.#tableBuckets) publisher.publish(kvSubject(bucket, indexKey(partition)), index);
    }
    const next: Manifest = {
      ...committed,
      checkpoint,
      positions,
      watermarks,
      chunkBits,
      chunks: chunkKeys,
      keys,
      committedAt: started,
      counters,
    };
    await publisher.flush();
    this.#revision = await store.commit(step, partition, next, this.#revision);
    this.#manifest = next;
    this.metrics.checkpoints++;
    this.metrics.lastCheckpointBytes = bytes;
    this.metrics.lastCheckpointMs = clock.now() - started;
    if (relayout) {
      await store.collectGarbage(step, partition, next, committed.chunkBits, operator.ownsRows ? [] : this.#tableBuckets);
      this.#manifest = { ...next, oldestGeneration: next.generation };
    }
    if (operator.ownsRows && pagesRelayout) {
      if (previousRowBits !== undefined) await store.purgeTablePages(this.#tableBuckets, partition, previousRowBits);
      this.#rowBits = rowBits;
    }
  }
}

/** A checkpoint waits while more than this many of its writes are unacknowledged. */
const maxPendingWrites = 64;

export type OperatorActor = Actor<typeof operatorLifecycle>;

/** Create and start an operator actor; it recovers its partition, then runs. */
export function startOperatorActor(options: OperatorActorOptions): { core: OperatorCore; actor: OperatorActor } {
  const core = new OperatorCore(options);
  const actor = createActor(operatorLifecycle, {
    input: {
      core,
      checkpointMs: options.checkpointMs ?? 1000,
      checkpointEvents: options.checkpointEvents ?? 100_000,
      ...(options.backoffMs === undefined ? {} : { backoffMs: options.backoffMs }),
      ...(options.operator.onTime ? { tickMs: options.tickMs ?? 100 } : {}),
    },
    clock: options.clock,
  });
  actor.start();
  return { core, actor };
}

export function lifecycleState(actor: OperatorActor): LifecycleState {
  return actor.getSnapshot().value as LifecycleState;
}
