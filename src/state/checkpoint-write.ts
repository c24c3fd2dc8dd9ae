/**
 * The checkpoint write protocol: how an operator actor's cut (its changed state chunks, input
 * positions and watermarks, taken synchronously) and what goes with it (the step's result-table
 * pages of the same keys) become one durable checkpoint: the chunks with their pages, a chunk at
 * a time; the other pages; then, once every write is acknowledged, the manifest by compare-and-set
 * (the atomic commit); then garbage collection. A crash before the commit leaves the committed
 * manifest and every key it names untouched.
 * See docs/ARCHITECTURE.md, "The write protocol", for each step and its bounds.
 *
 * @example
 * const outcome = await writeCheckpoint(store, publisher, { step: "revenue", partition: 0, committed, revision }, cut, companions);
 * if (outcome.kind === "committed") ({ manifest: committed, revision } = outcome);
 */
import { nextTurn } from "../core/clock.ts";
import type { Publisher } from "../log/publisher.ts";
import { type CheckpointStore, type Manifest, maxChunkBytes } from "./checkpoint.ts";
import { type ChunkSnapshot, encodeChunk } from "./keyed-state.ts";

/** A message written with the checkpoint. */
export interface Companion {
  readonly subject: string;
  readonly data: Uint8Array;
}

/** What the actor's state and input were at the cut (taken before the first await). */
export interface CheckpointCut {
  /** The changed chunks (deltas or bases), as `KeyedState.snapshotDirty` gave them. */
  readonly chunks: readonly ChunkSnapshot<unknown>[];
  readonly chunkBits: number;
  readonly keys: number;
  /** Every chunk is written as a new base (the first checkpoint after a recovery). */
  readonly rewriteAll: boolean;
  readonly positions: Readonly<Record<string, number>>;
  readonly watermarks: Readonly<Record<string, number>>;
  readonly counters: Readonly<Record<string, number>>;
  /** The clock time it began at (the manifest's `committedAt`). */
  readonly at: number;
  /** Read once every write is acknowledged: the manifest's `outputs` (batched stream sinks). */
  readonly outputs?: (() => Record<string, number>) | undefined;
  /** Called when the protocol is done with a chunk (copy-on-write: the state may change it in place again). */
  readonly release: (chunk: ChunkSnapshot<unknown>) => void;
}

/** What is written with the state: the step's result-table pages. */
export interface Companions {
  /** What goes with a state chunk (its rows' table pages, as of the cut). */
  with(chunk: ChunkSnapshot<unknown>): readonly Companion[];
  /** Groups written after the chunks, one at a time. */
  after(): Iterable<readonly Companion[]>;
  /** Written last, before the commit. */
  last(): readonly Companion[];
  /** Writes one of them (a table page: src/state/fenced-pages.ts). */
  put(message: Companion): void;
  /** Resolves once every message put is stored; rejects with one that failed. */
  settled(): Promise<void>;
  /** After the commit. */
  committed(): Promise<void>;
}

export type CheckpointOutcome =
  | { readonly kind: "committed"; readonly manifest: Manifest; readonly revision: number; readonly bytes: number }
  /** A chunk was too large in bytes for one message: split the chunks, and write them all next time. */
  | { readonly kind: "split" };

/** A checkpoint waits while more than this many bytes of its writes are unacknowledged. */
export const maxCheckpointBytes = 4 * 1024 * 1024;

export const noCompanions: Companions = {
  with: () => [],
  after: () => [],
  last: () => [],
  put: () => undefined,
  settled: () => Promise.resolve(),
  committed: () => Promise.resolve(),
};

export async function writeCheckpoint(
  store: CheckpointStore,
  publisher: Publisher,
  target: { readonly step: string; readonly partition: number; readonly committed: Manifest; readonly revision: number },
  cut: CheckpointCut,
  companions: Companions = noCompanions,
): Promise<CheckpointOutcome> {
  const { step, partition, committed } = target;
  // At most `maxCheckpointBytes` of encoded writes wait for their acks (the Publisher holds them
  // until then, and the socket may too): each chunk's writes are followed by a flush (it resolves
  // once everything published before it is acknowledged, whatever is published after), and the
  // oldest flushes are awaited while more than that is unacknowledged. A threshold on the
  // publisher's pending count or bytes would not do: the actor's own outputs (a stream sink) keep
  // them high for as long as events flow, and the checkpoint would never finish.
  const unacked: { flushed: Promise<void>; bytes: number }[] = [];
  let unackedBytes = 0;
  let bytes = 0;
  const written = async (n: number) => {
    bytes += n;
    const flushed = publisher.flush();
    flushed.catch(() => undefined); // a failure surfaces when it is awaited, below
    unacked.push({ flushed, bytes: n });
    unackedBytes += n;
    while (unackedBytes > maxCheckpointBytes) {
      const oldest = unacked.shift()!;
      unackedBytes -= oldest.bytes;
      await oldest.flushed;
    }
    await nextTurn();
  };
  const publish = (messages: readonly Companion[]): number => {
    let n = 0;
    for (const m of messages) {
      companions.put(m);
      n += m.data.length;
    }
    return n;
  };

  const { chunkBits } = cut;
  const sameLayout = chunkBits === committed.chunkBits;
  const chunkKeys: Record<string, string> = sameLayout ? { ...committed.chunks } : {};
  const deltas: Record<string, number> = sameLayout ? { ...committed.deltas } : {};
  for (const chunk of cut.chunks) {
    const encoded = encodeChunk(chunk);
    const with_ = companions.with(chunk);
    const largest = with_.reduce((max, m) => Math.max(max, m.data.length), encoded.length);
    // A chunk too large for one message (few keys with large values): give this attempt up. What
    // it wrote is under keys the committed manifest does not name.
    if (largest > maxChunkBytes && chunk.entries.size > 1) return { kind: "split" };
    if (chunk.changes) {
      store.writeChunk(store.nextDeltaKey(step, partition, committed, chunkBits, chunk.index), encoded);
      deltas[chunk.index] = (deltas[chunk.index] ?? 0) + 1;
    } else {
      const key = store.nextChunkKey(step, partition, committed, chunkBits, chunk.index);
      store.writeChunk(key, encoded);
      chunkKeys[chunk.index] = key;
      delete deltas[chunk.index];
    }
    const n = encoded.length + publish(with_);
    cut.release(chunk);
    await written(n);
  }
  for (const group of companions.after()) await written(publish(group));
  publish(companions.last());
  await Promise.all(unacked.map((u) => u.flushed)); // a write that failed fails the checkpoint
  await companions.settled(); // a page put waits for the one before it, so may go out after the flushes
  await publisher.flush();
  const outputs = cut.outputs?.();
  const manifest: Manifest = {
    ...committed,
    checkpoint: committed.checkpoint + 1,
    positions: cut.positions,
    watermarks: cut.watermarks,
    chunkBits,
    chunks: chunkKeys,
    deltas,
    keys: cut.keys,
    committedAt: cut.at,
    counters: cut.counters,
    ...(outputs && Object.keys(outputs).length > 0 ? { outputs } : {}),
  };
  const revision = await store.commit(step, partition, manifest, target.revision);
  let next = manifest;
  if (cut.rewriteAll || !sameLayout) {
    await store.collectGarbage(step, partition, manifest, committed.chunkBits);
    next = { ...manifest, oldestGeneration: manifest.generation };
  }
  await companions.committed();
  return { kind: "committed", manifest: next, revision, bytes };
}
