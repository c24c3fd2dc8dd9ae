/**
 * An operator actor: one per (step, partition). It owns the partition's keyed state, its input
 * positions and its outputs, and runs them through the shared lifecycle machine. Checkpoints
 * write, pipelined and acknowledged together: each state chunk that changed (a delta of its changed
 * keys, or the whole chunk as a new base) and the result-table page of the same keys, then the
 * manifest by compare-and-set. A page is built from the chunk as the checkpoint reaches it: as of
 * the snapshot for a base, and as the records have left it by then for a delta (so a page may run
 * a little ahead of its checkpoint, as pages of an uncommitted attempt do after a crash; replay
 * reproduces the same rows). Outputs to streams and dead
 * letters are published as records are processed and are acknowledged before the manifest that
 * moves past them is committed.
 *
 * @example
 * const actor = startOperatorActor({ pipelineId: "shop", step: "revenue", partition: 0, operator, store, publisher, clock });
 * actor.send({ type: "batch", batch: { source: "orders", records, upTo: 42 } });
 */
import { type Actor, createActor } from "xstate";
import { publishSideOutput } from "../src/log/side-outputs.ts";
import { type Publisher } from "../src/log/publisher.ts";
import type { OutputLog } from "../src/log/record-batch.ts";
import type { Key } from "../src/core/partition.ts";
import { type Clock, nextTurn } from "../src/core/clock.ts";
import { CheckpointHistogram } from "../src/core/checkpoint-histogram.ts";
import { type CheckpointSlots, type CheckpointStore, type Manifest, maxChunkBytes } from "../src/state/checkpoint.ts";
import { encodeChunk, KeyedState } from "../src/state/keyed-state.ts";
import { encodePage, indexKey, pageKey } from "../src/state/table.ts";
import { type ActorCore, type LifecycleState, operatorLifecycle } from "./lifecycle.ts";
import { BatchedSink } from "./batched-sink.ts";
import type { Batch, Operator, OperatorContext, Rec } from "./operator.ts";
import { RecentInputs } from "./recent-inputs.ts";
import type { TableFlusher } from "./table-flush.ts";
import { kvSubject, tableBucket } from "../src/core/names.ts";

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
  /** Stream sinks fed by this step. */
  readonly streams?: readonly StreamSinkPlan[];
  /** Where a batched stream sink reads back what it published (required if a sink is batched). */
  readonly outputLog?: OutputLog;
  /**
   * The edge to the steps that read this one (their own actors, maybe in other processes): an
   * internal stream every output goes to, in an envelope with this partition's watermark.
   */
  readonly edge?: { readonly id: string; readonly subject: string };
  /** The edge to the steps that read the events this step found late. */
  readonly lateEdge?: { readonly id: string; readonly subject: string };
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
  /** How often an operator with processing-time timers (`onTime`) gets a tick. Default 100 ms. */
  readonly tickMs?: number;
  /** How many recent input records to keep for inspection (default 20; 0: none). */
  readonly recentInputs?: number;
  /** Shared by the actors of a worker: writes changed table pages between checkpoints. */
  readonly tableFlusher?: TableFlusher;
}

export interface OperatorMetrics {
  eventsIn: number;
  outputs: number;
  deadLetters: number;
  lateEvents: number;
  checkpoints: number;
  lastCheckpointMs: number;
  lastCheckpointBytes: number;
  /** Every checkpoint's duration and size (for /metrics). */
  readonly checkpointHistogram: CheckpointHistogram;
}

/** The work behind an operator actor's lifecycle. */
export class OperatorCore implements ActorCore {
  state: KeyedState<unknown>;
  /** Per source, the last sequence folded into `state` (ahead of the committed manifest). */
  positions: Record<string, number> = {};
  /** Per source, its watermark as of `positions`. */
  watermarks: Record<string, number> = {};
  eventsSinceCheckpoint = 0;
  #lastInputAt = Number.NEGATIVE_INFINITY;
  #checkpointAt = Number.NEGATIVE_INFINITY;
  /** The last input records applied (references), for inspection. */
  readonly recent: RecentInputs;
  readonly metrics: OperatorMetrics = {
    eventsIn: 0,
    outputs: 0,
    deadLetters: 0,
    lateEvents: 0,
    checkpoints: 0,
    lastCheckpointMs: 0,
    lastCheckpointBytes: 0,
    checkpointHistogram: new CheckpointHistogram(),
  };
  #manifest: Manifest | undefined;
  #revision = 0;
  #rewriteAll = true;
  #positionsChanged = false;
  #source = "";
  /** Sources idle for their timeout, and the highest watermark so far. */
  readonly #idle = new Set<string>();
  #floor = Number.NEGATIVE_INFINITY;
  /** The watermark last sent on the edge, and when. */
  #edgeWatermark = Number.NEGATIVE_INFINITY;
  #edgeWatermarkAt = Number.NEGATIVE_INFINITY;
  readonly #ctx: OperatorContext;
  /** Stream sinks that take records in batches, and the input whose outputs they take now. */
  readonly #batched: BatchedSink[];
  #applying = 0;
  readonly #tableBuckets: string[];
  readonly #edgeSubjects: string[];
  /** Table rows kept by an operator that owns them (key to row key to row), and their layout. */
  #rows: KeyedState<Record<string, unknown>> | undefined;
  #rowBits: number | undefined;

  constructor(readonly options: OperatorActorOptions) {
    this.state = this.#newState(0);
    this.#tableBuckets = (options.tables ?? []).map(tableBucket);
    this.#edgeSubjects = [options.edge, options.lateEdge].flatMap((e) => (e ? [e.subject] : []));
    this.recent = new RecentInputs(options.recentInputs ?? 20);
    const streams = (options.streams ?? []).filter((s) => !s.batched);
    const { publisher, pipelineId } = options;
    this.#batched = (options.streams ?? []).flatMap((s) =>
      s.batched ? [new BatchedSink(publisher, `${pipelineId}/${s.id}/${(options.sources ?? [])[0]}`, s)] : []
    );
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
      emit: (id, output, time, before) => {
        // The output's JSON once, for every sink and the edge envelope.
        const json = output === undefined ? undefined : JSON.stringify(output);
        if (json !== undefined && streams.length > 0) {
          const bytes = encoder.encode(json);
          for (const sink of streams) {
            publisher.publish(sink.subject, bytes, { msgId: `${pipelineId}/${sink.id}/${id}` });
            this.metrics.outputs++;
          }
        }
        if (json !== undefined && this.#batched.length > 0) {
          for (const sink of this.#batched) sink.add(this.#applying, json);
          this.metrics.outputs += this.#batched.length;
        }
        const edge = options.edge;
        if (edge) {
          // An EdgeEnvelope, written out around the output's JSON.
          let envelope = `{"p":${options.partition},"w":${finite(this.#edgeWatermark)},"t":${finite(time ?? Number.NaN)}`;
          if (json !== undefined) envelope += `,"v":${json}`;
          if (before !== undefined) envelope += `,"b":${JSON.stringify(before)}`;
          publisher.publish(edge.subject, encoder.encode(envelope + "}"), { msgId: `${pipelineId}/${edge.id}/${id}` });
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
        const edge = options.lateEdge;
        if (edge) {
          const envelope: EdgeEnvelope = {
            p: options.partition,
            w: finite(this.#edgeWatermark),
            t: finite(rec.time),
            v: rec.value,
          };
          const id = `${pipelineId}/${edge.id}/${this.#source}/${rec.seq}`;
          publisher.publish(edge.subject, encoder.encode(JSON.stringify(envelope)), { msgId: id });
        }
      },
      putRow: (key, hash, rowKey, row) => {
        const rows = this.#rows;
        if (rows) rows.set(key, hash, { ...rows.get(key, hash), [rowKey]: row });
      },
    };
    options.tableFlusher?.add(this);
  }

  #newState(chunkBits: number): KeyedState<unknown> {
    return new KeyedState<unknown>(chunkBits, undefined, undefined, this.options.operator.stateLayout);
  }

  /**
   * The event-time watermark of this actor: the lowest over its sources, leaving out idle ones
   * (all idle: the highest). It never goes back, also when an idle source wakes up behind it.
   */
  get watermark(): number {
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    for (const source of this.options.sources ?? []) {
      const w = this.watermarks[source] ?? Number.NEGATIVE_INFINITY;
      if (!this.#idle.has(source)) low = Math.min(low, w);
      high = Math.max(high, w);
    }
    const wm = low === Number.POSITIVE_INFINITY ? high : low;
    if (wm > this.#floor) this.#floor = wm;
    return this.#floor;
  }

  /** The last committed checkpoint, once recovered. */
  get manifest(): Manifest | undefined {
    return this.#manifest;
  }

  async recover(): Promise<void> {
    const { store, step, partition, clock } = this.options;
    const recovered = await store.recover(step, partition, clock.now());
    const state = this.#newState(recovered.manifest.chunkBits);
    for (const chunk of recovered.chunks) state.loadChunk(chunk.index, chunk.base, chunk.deltas);
    this.state = state;
    this.#manifest = recovered.manifest;
    this.#revision = recovered.revision;
    this.positions = { ...recovered.manifest.positions };
    this.watermarks = { ...recovered.manifest.watermarks };
    this.#idle.clear();
    this.#floor = Number.NEGATIVE_INFINITY;
    this.metrics.deadLetters = recovered.manifest.counters.deadLetters ?? 0;
    this.metrics.lateEvents = recovered.manifest.counters.lateEvents ?? 0;
    this.options.operator.restore?.(state);
    await this.#recoverBatchedSinks();
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

  /**
   * Batched stream sinks read back what they published after the checkpoint. A sink without a
   * recorded start (new) starts at its stream's end, recorded at once, so that a crash before the
   * first checkpoint still finds what it published.
   */
  async #recoverBatchedSinks(): Promise<void> {
    if (this.#batched.length === 0) return;
    const { outputLog, store, step, partition } = this.options;
    if (!outputLog) throw new Error(`step "${step}" has a batched stream sink and no output log`);
    const manifest = this.#manifest!;
    for (const sink of this.#batched) await sink.recover(outputLog, manifest.outputs?.[sink.sink.id]);
    if (this.#batched.every((sink) => manifest.outputs?.[sink.sink.id] !== undefined)) return;
    const outputs = Object.fromEntries(this.#batched.map((sink) => [sink.sink.id, sink.readFrom]));
    const next: Manifest = { ...manifest, outputs: { ...manifest.outputs, ...outputs } };
    this.#revision = await store.commit(step, partition, next, this.#revision);
    this.#manifest = next;
  }

  process(batch: Batch): void {
    if (batch.idle) return this.#setIdle(batch.source, true);
    this.#setIdle(batch.source, false);
    this.#lastInputAt = this.options.clock.now();
    const applied = this.positions[batch.source] ?? 0;
    if (batch.upTo <= applied) return;
    this.#source = batch.source;
    const { operator } = this.options;
    const ctx = this.#ctx;
    let n = 0;
    const advance = operator.advance;
    const batched = this.#batched;
    for (const sink of batched) sink.open(applied + 1);
    for (const rec of batch.records) {
      if (rec.seq <= applied) continue;
      n++;
      if (advance) this.#advanceTo(batch.source, rec.watermark);
      this.#applying = rec.seq;
      try {
        operator.apply(ctx, rec);
      } catch (error) {
        this.#deadLetter(batch.source, rec, error);
      }
      for (const sink of batched) {
        if (!sink.full) continue;
        sink.close(rec.seq);
        sink.open(rec.seq + 1);
      }
    }
    for (const sink of batched) sink.close(batch.upTo);
    this.recent.record(batch.records, applied);
    if (advance) this.#advanceTo(batch.source, batch.watermark);
    else this.watermarks[batch.source] = Math.max(this.watermarks[batch.source] ?? Number.NEGATIVE_INFINITY, batch.watermark);
    this.positions[batch.source] = batch.upTo;
    this.#positionsChanged = true;
    this.metrics.eventsIn += n;
    this.eventsSinceCheckpoint += n;
    this.#sendWatermark(false);
  }

  /**
   * Tell the steps reading the edge how far this partition's watermark got: after every output
   * sent before it (a window's row is sent before the watermark that closed it). At most every
   * `edgeWatermarkMs` while batches flow, and always before a checkpoint.
   */
  #sendWatermark(force: boolean): void {
    const edges = this.#edgeSubjects;
    if (edges.length === 0) return;
    const wm = this.watermark - (this.options.operator.watermarkDelayMs ?? 0);
    if (wm <= this.#edgeWatermark) return;
    const now = this.options.clock.now();
    if (!force && now - this.#edgeWatermarkAt < edgeWatermarkMs) return;
    this.#edgeWatermark = wm;
    this.#edgeWatermarkAt = now;
    const envelope = encoder.encode(JSON.stringify({ p: this.options.partition, w: finite(wm) } satisfies EdgeEnvelope));
    for (const subject of edges) this.options.publisher.publish(subject, envelope);
  }

  #setIdle(source: string, idle: boolean): void {
    if (this.#idle.has(source) === idle) return;
    const low = this.watermark;
    if (idle) this.#idle.add(source);
    else this.#idle.delete(source);
    if (this.watermark > low) {
      this.options.operator.advance?.(this.#ctx);
      this.#sendWatermark(false);
    }
  }

  pausedMs(): number {
    return this.options.clock.now() - this.#lastInputAt;
  }

  checkpointAgeMs(): number {
    return this.options.clock.now() - this.#checkpointAt;
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
    this.watermarks[source] = watermark;
    // The floor is the watermark as last computed: at worst behind, and then one call too many.
    const low = this.#floor;
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
    this.#checkpointAt = this.options.clock.now();
    if (!this.#positionsChanged && !this.#rewriteAll) return;
    const slots = this.options.slots;
    if (!slots) return this.#checkpointFlagged();
    await slots.acquire();
    try {
      await this.#checkpointFlagged();
    } finally {
      slots.release();
    }
  }

  // ---- Table flushes between checkpoints (actors/table-flush.ts) ----
  /** True while a checkpoint writes: a flush then waits, so pages never go back in time. */
  #checkpointing = false;
  /** A flush round came while a checkpoint wrote: flush when it ends, not a round later. */
  #flushWaits = false;

  async #checkpointFlagged(): Promise<void> {
    this.#checkpointing = true;
    try {
      await this.#checkpoint();
    } finally {
      this.#checkpointing = false;
      if (this.#flushWaits) {
        this.#flushWaits = false;
        this.options.tableFlusher?.flushNow(this);
      }
    }
  }

  /**
   * Write the table pages of the chunks changed since the last table write, in the committed
   * page layout, synchronously. Table pages only: state and positions stay the checkpoint's.
   */
  flushTables(): void {
    const committed = this.#manifest;
    if (!committed || this.#tableBuckets.length === 0) return;
    if (this.#checkpointing) {
      this.#flushWaits = true;
      return;
    }
    const { publisher, operator, clock } = this.options;
    const page = { at: clock.now(), checkpoint: committed.checkpoint + 1 };
    // A page too large in bytes for one message waits for the checkpoint, which splits its chunk.
    const write = (bits: number, index: number, rows: [Key, unknown][]): boolean => {
      const bytes = encodePage({ ...page, rows });
      if (bytes.length > maxChunkBytes) return false;
      this.#publishPage(bits, index, bytes);
      return true;
    };
    // The pages left over wait for the next round (they stay marked changed).
    const flushChanged = <S>(state: KeyedState<S>, rowsOf: (entries: ReadonlyMap<Key, S>) => [Key, unknown][]) => {
      for (const index of state.tableChanged) {
        if (publisher.pendingBytes > maxFlushBytes) return;
        const entries = state.chunkEntries(index);
        // A chunk that outgrew its page waits for the checkpoint, which splits it first.
        if (entries.size > state.maxChunkKeys) continue;
        if (write(state.chunkBits, index, rowsOf(entries))) state.tableChanged.delete(index);
      }
    };
    if (operator.ownsRows) {
      const owned = this.#rows;
      if (owned && owned.chunkBits === this.#rowBits) flushChanged(owned, ownedRows);
    } else if (this.state.chunkBits === committed.chunkBits) flushChanged(this.state, this.#stateRows);
  }

  /** Publish a table page to each of the step's table buckets; returns the bytes that makes. */
  #publishPage(bits: number, index: number, page: Uint8Array): number {
    const { publisher, partition } = this.options;
    for (const bucket of this.#tableBuckets) publisher.publish(kvSubject(bucket, pageKey(partition, bits, index)), page);
    return page.length * this.#tableBuckets.length;
  }

  /** The table rows of a chunk of state: each key's row, by the operator. */
  readonly #stateRows = (entries: ReadonlyMap<Key, unknown>): [Key, unknown][] => {
    const rows: [Key, unknown][] = [];
    for (const [k, s] of entries) rows.push([k, this.options.operator.row(k, s)]);
    return rows;
  };
  // ---- end of table flushes ----

  async #checkpoint(): Promise<void> {
    const committed = this.#manifest;
    if (!committed) throw new Error("checkpoint before recovery");
    this.#sendWatermark(true);
    const { store, publisher, step, partition, operator, clock } = this.options;
    const started = clock.now();
    // Up to the first await: a consistent snapshot of state and positions. Values are
    // replaced, never changed in place, so the snapshot stays valid while records flow on.
    const rewriteAll = this.#rewriteAll;
    if (rewriteAll) this.state.touchAll();
    const state = this.state;
    const chunks = state.snapshotDirty();
    state.tableChanged.clear(); // this checkpoint writes the pages of every changed chunk
    const chunkBits = this.state.chunkBits;
    const rowState = this.#rows;
    const rowChunks = rowState?.snapshotDirty() ?? [];
    rowState?.tableChanged.clear();
    const rowBits = this.#rows?.chunkBits;
    const previousRowBits = this.#rowBits;
    const positions = { ...this.positions };
    // -Infinity (no event time yet) does not survive JSON: leave such sources out.
    const watermarks = Object.fromEntries(Object.entries(this.watermarks).filter(([, w]) => Number.isFinite(w)));
    const keys = this.state.size;
    const counters = { deadLetters: this.metrics.deadLetters, lateEvents: this.metrics.lateEvents };
    const outputsAfterFlush = this.#batched.map((sink) => [sink.sink.id, sink.cut()] as const);
    const checkpoint = committed.checkpoint + 1;
    this.#rewriteAll = false;
    this.#positionsChanged = false;
    this.eventsSinceCheckpoint = 0;

    // Then the writes, a chunk at a time, with bounded memory: each changed chunk and its table
    // pages; the table's page layout when it changed; then the manifest. At most
    // `maxCheckpointBytes` of this checkpoint's encoded writes wait for their acks (the Publisher
    // holds them until then, and the socket may too): each chunk's writes are followed by a flush
    // (it resolves once everything published before it is acknowledged, whatever is published
    // after), and the oldest flushes are awaited while more than that is unacknowledged. A
    // threshold on the publisher's pending count or bytes would not do: the actor's own outputs (a
    // stream sink) keep them high for as long as events flow, and the checkpoint would never finish.
    const unacked: { flushed: Promise<void>; bytes: number }[] = [];
    let unackedBytes = 0;
    const bound = async (written: number) => {
      const flushed = publisher.flush();
      flushed.catch(() => undefined); // a failure surfaces when it is awaited, below
      unacked.push({ flushed, bytes: written });
      unackedBytes += written;
      while (unackedBytes > maxCheckpointBytes) {
        const oldest = unacked.shift()!;
        unackedBytes -= oldest.bytes;
        await oldest.flushed;
      }
    };
    let bytes = 0;
    const sameLayout = chunkBits === committed.chunkBits;
    const chunkKeys: Record<string, string> = sameLayout ? { ...committed.chunks } : {};
    const deltas: Record<string, number> = sameLayout ? { ...committed.deltas } : {};
    for (const chunk of chunks) {
      const encoded = encodeChunk(chunk);
      let page: Uint8Array | undefined;
      if (this.#tableBuckets.length > 0 && !operator.ownsRows) {
        page = encodePage({ at: started, checkpoint, rows: this.#stateRows(chunk.entries) });
      }
      if (Math.max(encoded.length, page?.length ?? 0) > maxChunkBytes && chunk.entries.size > 1) {
        // A chunk too large in bytes for one message (few keys with large values): give this
        // attempt up, split the chunks, and let the next checkpoint write the new layout whole.
        // What this attempt wrote is under keys the committed manifest does not name.
        this.state.splitChunks();
        this.#rewriteAll = true;
        this.#positionsChanged = true;
        return;
      }
      if (chunk.changes) {
        store.writeChunk(store.nextDeltaKey(step, partition, committed, chunkBits, chunk.index), encoded);
        deltas[chunk.index] = (deltas[chunk.index] ?? 0) + 1;
      } else {
        const key = store.nextChunkKey(step, partition, committed, chunkBits, chunk.index);
        store.writeChunk(key, encoded);
        chunkKeys[chunk.index] = key;
        delete deltas[chunk.index];
      }
      const written = encoded.length + (page ? this.#publishPage(chunkBits, chunk.index, page) : 0);
      bytes += written;
      state.release(chunk);
      await bound(written);
      await nextTurn();
    }
    // Pages of rows the operator keeps itself, by their own layout.
    for (const chunk of rowChunks) {
      const written = this.#publishPage(
        rowBits!,
        chunk.index,
        encodePage({ at: started, checkpoint, rows: ownedRows(chunk.entries) }),
      );
      bytes += written;
      rowState!.release(chunk);
      await bound(written);
      await nextTurn();
    }
    const relayout = rewriteAll || chunkBits !== committed.chunkBits;
    const pageBits = operator.ownsRows ? rowBits : chunkBits;
    const pagesRelayout = operator.ownsRows ? rowBits !== previousRowBits && rowChunks.length > 0 : relayout;
    if (pagesRelayout && pageBits !== undefined) {
      const index = encoder.encode(JSON.stringify({ chunkBits: pageBits }));
      for (const bucket of this.#tableBuckets) publisher.publish(kvSubject(bucket, indexKey(partition)), index);
    }
    await Promise.all(unacked.map((u) => u.flushed)); // a write that failed fails the checkpoint
    await publisher.flush();
    const next: Manifest = {
      ...committed,
      checkpoint,
      positions,
      watermarks,
      chunkBits,
      chunks: chunkKeys,
      deltas,
      keys,
      committedAt: started,
      counters,
      ...(outputsAfterFlush.length > 0 ? { outputs: Object.fromEntries(outputsAfterFlush.map(([id, at]) => [id, at()])) } : {}),
    };
    this.#revision = await store.commit(step, partition, next, this.#revision);
    this.#manifest = next;
    this.metrics.checkpoints++;
    this.metrics.lastCheckpointBytes = bytes;
    this.metrics.lastCheckpointMs = clock.now() - started;
    this.metrics.checkpointHistogram.observe(this.metrics.lastCheckpointMs / 1000, bytes);
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

/** A stream sink of a step: its step id, stream and subject; batched: records in batches (actors/batched-sink.ts). */
export interface StreamSinkPlan {
  readonly id: string;
  readonly stream: string;
  readonly subject: string;
  readonly batched?: boolean;
}

/**
 * What a step sends on its edge: its partition, its watermark (null: none yet), and for an
 * output, its event time (null: none), the output `v` and, for an updated row, the version `b` it
 * replaces. Without `v` and `b` it only moves the partition's watermark.
 */
export interface EdgeEnvelope {
  p: number;
  w: number | null;
  t?: number | null;
  v?: unknown;
  b?: unknown;
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);

/** The table rows of a chunk of rows an operator keeps itself (key to row key to row): each row under its row key. */
function ownedRows(entries: ReadonlyMap<Key, Record<string, unknown>>): [Key, unknown][] {
  const rows: [Key, unknown][] = [];
  for (const byRowKey of entries.values()) rows.push(...Object.entries(byRowKey));
  return rows;
}

/** How often a busy edge carries watermark news. */
const edgeWatermarkMs = 20;

/** A checkpoint waits while more than this many bytes of its writes are unacknowledged. */
const maxCheckpointBytes = 4 * 1024 * 1024;
/**
 * A table flush writes no more pages while the publisher holds more than this many unacknowledged
 * bytes (a checkpoint's writes, or the round's own pages); the rest wait for the next round. With
 * many busy keys a round would otherwise encode and send the whole table at once.
 */
const maxFlushBytes = 4 * 1024 * 1024;

export type OperatorActor = Actor<typeof operatorLifecycle>;

/** Create and start an operator actor; it recovers its partition, then runs. */
export function startOperatorActor(options: OperatorActorOptions): { core: OperatorCore; actor: OperatorActor } {
  const core = new OperatorCore(options);
  const actor = createActor(operatorLifecycle, {
    input: {
      core,
      checkpointMs: options.checkpointMs ?? 1000,
      checkpointEvents: options.checkpointEvents ?? 100_000,
      idleCheckpointMs: options.idleCheckpointMs ?? (options.checkpointMs ?? 1000) / 10,
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
