/**
 * An operator actor: one per (step, partition). It owns the partition's keyed state, its input
 * positions and its outputs, and runs them through the shared lifecycle machine. Checkpoints
 * write, pipelined and acknowledged together: table rows changed since the last checkpoint
 * (coalesced per key), the state chunks that changed, then the manifest by compare-and-set.
 * Outputs to streams and dead letters are published as records are processed and are
 * acknowledged before the manifest that moves past them is committed.
 *
 * @example
 * const actor = startOperatorActor({ pipelineId: "shop", step: "revenue", partition: 0, operator, store, publisher, clock });
 * actor.send({ type: "batch", batch: { source: "orders", records, upTo: 42 } });
 */
import { type Actor, createActor } from "xstate";
import { publishDeadLetter } from "../src/log/dead-letters.ts";
import { kvSubject, type Publisher } from "../src/log/publisher.ts";
import type { Key } from "../src/pipeline/partition.ts";
import { tableBucket } from "../src/pipeline/pipeline.ts";
import { type Clock, nextTurn } from "../src/runtime/clock.ts";
import type { CheckpointStore, Manifest } from "../src/state/checkpoint.ts";
import { encodeChunk, KeyedState } from "../src/state/keyed-state.ts";
import { tableKey } from "../src/state/table.ts";
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
  readonly checkpointMs?: number;
  readonly checkpointEvents?: number;
  readonly backoffMs?: number;
}

export interface OperatorMetrics {
  eventsIn: number;
  outputs: number;
  deadLetters: number;
  checkpoints: number;
  lastCheckpointMs: number;
  lastCheckpointBytes: number;
}

/** The work behind an operator actor's lifecycle. */
export class OperatorCore implements ActorCore {
  state = new KeyedState<unknown>();
  /** Per source, the last sequence folded into `state` (ahead of the committed manifest). */
  positions: Record<string, number> = {};
  eventsSinceCheckpoint = 0;
  readonly metrics: OperatorMetrics = {
    eventsIn: 0,
    outputs: 0,
    deadLetters: 0,
    checkpoints: 0,
    lastCheckpointMs: 0,
    lastCheckpointBytes: 0,
  };
  #manifest: Manifest | undefined;
  #revision = 0;
  #rewriteAll = true;
  #positionsChanged = false;
  #changedRows = new Map<Key, unknown>();
  #source = "";
  readonly #ctx: OperatorContext;
  readonly #tableBuckets: string[];

  constructor(readonly options: OperatorActorOptions) {
    this.#tableBuckets = (options.tables ?? []).map(tableBucket);
    const tracksRows = this.#tableBuckets.length > 0;
    const streams = options.streams ?? [];
    const { publisher, pipelineId } = options;
    this.#ctx = {
      state: this.state,
      changed: (key, state) => {
        if (tracksRows) this.#changedRows.set(key, state);
      },
      emit: (rec, output) => {
        const bytes = encoder.encode(JSON.stringify(output));
        for (const sink of streams) {
          publisher.publish(sink.subject, bytes, { msgId: `${pipelineId}/${sink.id}/${this.#source}/${rec.seq}` });
          this.metrics.outputs++;
        }
      },
    };
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
    (this.#ctx as { state: KeyedState<unknown> }).state = state;
    this.#manifest = recovered.manifest;
    this.#revision = recovered.revision;
    this.positions = { ...recovered.manifest.positions };
    this.metrics.deadLetters = recovered.manifest.counters.deadLetters ?? 0;
    this.#changedRows = new Map();
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
    for (const rec of batch.records) {
      if (rec.seq <= applied) continue;
      n++;
      try {
        operator.apply(ctx, rec);
      } catch (error) {
        this.#deadLetter(batch.source, rec, error);
      }
    }
    this.positions[batch.source] = batch.upTo;
    this.#positionsChanged = true;
    this.metrics.eventsIn += n;
    this.eventsSinceCheckpoint += n;
  }

  #deadLetter(source: string, rec: Rec, error: unknown): void {
    const { publisher, pipelineId, step, sourceStreams } = this.options;
    this.metrics.deadLetters++;
    let data: Uint8Array;
    try {
      data = encoder.encode(JSON.stringify(rec.value));
    } catch {
      data = encoder.encode(String(rec.value));
    }
    publishDeadLetter(publisher, pipelineId, {
      step,
      source,
      sourceStream: sourceStreams?.[source] ?? source,
      sourceSeq: rec.seq,
      reason: `step "${step}" threw on key ${JSON.stringify(rec.key)}: ${error instanceof Error ? error.message : String(error)}`,
      data,
    });
  }

  async checkpoint(): Promise<void> {
    const committed = this.#manifest;
    if (!committed) throw new Error("checkpoint before recovery");
    if (!this.#positionsChanged && !this.#rewriteAll) return;
    const { store, publisher, step, partition, operator, clock } = this.options;
    const started = clock.now();
    // Up to the first await: a consistent snapshot of state, positions and changed rows. Values
    // are replaced, never changed in place, so the snapshot stays valid while records flow on.
    const rows = this.#changedRows;
    this.#changedRows = new Map();
    const rewriteAll = this.#rewriteAll;
    if (rewriteAll) this.state.touchAll();
    const chunks = this.state.snapshotDirty();
    const chunkBits = this.state.chunkBits;
    const positions = { ...this.positions };
    const keys = this.state.size;
    const counters = { deadLetters: this.metrics.deadLetters };
    this.#rewriteAll = false;
    this.#positionsChanged = false;
    this.eventsSinceCheckpoint = 0;

    // Then the writes, in slices, with bounded memory: changed table rows, changed chunks.
    let bytes = 0;
    let sliced = 0;
    const breathe = async (weight: number) => {
      sliced += weight;
      if (sliced < rowsPerSlice) return;
      sliced = 0;
      await publisher.whenPendingBelow(maxPendingWrites);
      await nextTurn();
    };
    for (const bucket of this.#tableBuckets) {
      for (const [key, state] of rows) {
        const row = encoder.encode(JSON.stringify(operator.row(key, state)));
        bytes += row.length;
        publisher.publish(kvSubject(bucket, tableKey(key)), row);
        await breathe(1);
      }
    }
    const chunkKeys: Record<string, string> = chunkBits === committed.chunkBits ? { ...committed.chunks } : {};
    for (const chunk of chunks) {
      const encoded = encodeChunk(chunk);
      const key = store.nextChunkKey(step, partition, committed, chunkBits, chunk.index);
      store.writeChunk(key, encoded);
      chunkKeys[chunk.index] = key;
      bytes += encoded.length;
      await breathe(chunk.entries.size);
    }
    const next: Manifest = {
      ...committed,
      checkpoint: committed.checkpoint + 1,
      positions,
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
    if (rewriteAll || next.chunkBits !== committed.chunkBits) {
      await store.collectGarbage(step, partition, next, committed.chunkBits);
      this.#manifest = { ...next, oldestGeneration: next.generation };
    }
  }
}

/** A checkpoint yields to the event loop after about this many rows or state entries... */
const rowsPerSlice = 2000;
/** ... and waits while more than this many writes are unacknowledged. */
const maxPendingWrites = 10_000;

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
    },
    clock: options.clock,
  });
  actor.start();
  return { core, actor };
}

export function lifecycleState(actor: OperatorActor): LifecycleState {
  return actor.getSnapshot().value as LifecycleState;
}
