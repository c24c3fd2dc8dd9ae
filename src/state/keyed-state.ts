/**
 * Keyed state of one operator actor: a map from key to a JSON-serialisable value, split into
 * 2^chunkBits chunks by hash so that a checkpoint touches only the chunks that changed. When a
 * chunk holds more than `maxChunkKeys` keys, every chunk splits (the chunk count doubles), which
 * keeps chunks small: well under NATS's message size limit, and cheap to rewrite.
 *
 * A checkpoint writes what changed, not the whole state: for each changed chunk either a delta
 * (only the keys changed since the previous checkpoint, a removed key as `[key]`) or, when the
 * chunk's deltas would outgrow its last written base (or there are `maxDeltas` of them already,
 * or the chunk was never written whole), the whole chunk again as a new base (compaction). A chunk
 * is recovered by applying its base and then its deltas in order (`loadChunk`).
 *
 * A checkpoint takes a snapshot of the changed chunks synchronously and encodes and writes it
 * afterwards while records keep flowing. A delta's Map of changes is handed over whole; later
 * changes go to a new one. A base is copy-on-write: the snapshot holds the chunk Map itself, and
 * the chunk is copied only if a record changes it before the checkpoint has released it (values
 * are replaced, never changed in place, so a shallow copy suffices). Deltas need no copy, which
 * matters: while a large state fills up, copies of chunks waiting to be written were most of the
 * garbage a checkpoint made.
 *
 * @example
 * const state = new KeyedState<number>();
 * state.set("store-1", keyHash("store-1"), 3);
 * const [chunk] = state.snapshotDirty(); // { index: 0, entries: Map { "store-1" => 3 } } (a base)
 * encodeChunk(chunk); // Uint8Array of [["store-1",3]]
 * state.set("store-2", keyHash("store-2"), 5);
 * const [delta] = state.snapshotDirty(); // ... changes: Map { "store-2" => 5 } (a delta)
 * encodeChunk(delta); // Uint8Array of [["store-2",5]]
 */
import { chunkOf, type Key, keyHash } from "../pipeline/partition.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** In a delta: the key was removed. */
export const removed: unique symbol = Symbol("removed");

export interface ChunkSnapshot<S> {
  readonly index: number;
  /**
   * The whole chunk (for table pages, and for a base): of a base, as of the snapshot; of a delta,
   * the live chunk, which moves on with later records (read it synchronously, in one turn).
   */
  readonly entries: ReadonlyMap<Key, S>;
  /** A delta: the keys changed since the previous snapshot. Absent: write the chunk whole (a base). */
  readonly changes?: ReadonlyMap<Key, S | typeof removed>;
}

/** A base as `[[key, value], ...]`, a delta as the same with `[key]` for a removed key. */
export function encodeChunk<S>(chunk: ChunkSnapshot<S>): Uint8Array {
  if (!chunk.changes) return encoder.encode(JSON.stringify([...chunk.entries]));
  const records: ([Key, S] | [Key])[] = [];
  for (const [key, value] of chunk.changes) records.push(value === removed ? [key] : [key, value]);
  return encoder.encode(JSON.stringify(records));
}

/** Per chunk, what was written since its last base: -1 deltas means the next write is a base. */
interface ChunkLog {
  baseKeys: number;
  deltas: number;
  deltaKeys: number;
}

export class KeyedState<S> {
  #chunks: Map<Key, S>[];
  /** Per chunk, the keys changed since the last snapshot (undefined: none tracked yet). */
  #changes: (Map<Key, S | typeof removed> | undefined)[];
  #logs: ChunkLog[];
  #dirty = new Set<number>();
  /** Chunks a snapshot holds: copy before changing them. */
  #shared = new Set<number>();
  #bits: number;
  #size = 0;

  constructor(
    chunkBits = 0,
    readonly maxChunkKeys = 2048,
    /** Deltas a chunk may have before it is written whole again. */
    readonly maxDeltas = 8,
  ) {
    this.#bits = chunkBits;
    this.#chunks = Array.from({ length: 1 << chunkBits }, () => new Map());
    this.#changes = new Array(1 << chunkBits);
    this.#logs = Array.from({ length: 1 << chunkBits }, newLog);
  }

  get chunkBits(): number {
    return this.#bits;
  }

  get size(): number {
    return this.#size;
  }

  /** Whether a key changed since the last snapshot. */
  get changed(): boolean {
    return this.#dirty.size > 0;
  }

  get(key: Key, hash: number): S | undefined {
    return this.#chunks[chunkOf(hash, this.#bits)]!.get(key);
  }

  /** The chunk to change, copied first if a snapshot holds it. */
  #writable(index: number): Map<Key, S> {
    if (this.#shared.delete(index)) this.#chunks[index] = new Map(this.#chunks[index]!);
    return this.#chunks[index]!;
  }

  /** Store a key's value and mark its chunk changed. */
  set(key: Key, hash: number, value: S): void {
    const index = chunkOf(hash, this.#bits);
    const chunk = this.#writable(index);
    const before = chunk.size;
    chunk.set(key, value);
    this.#size += chunk.size - before;
    (this.#changes[index] ??= new Map()).set(key, value);
    this.#dirty.add(index);
  }

  /** Mark every chunk changed and due for a base: the next snapshot holds the whole state. */
  touchAll(): void {
    for (let i = 0; i < this.#chunks.length; i++) {
      this.#dirty.add(i);
      this.#logs[i]!.deltas = -1;
    }
  }

  delete(key: Key, hash: number): void {
    const index = chunkOf(hash, this.#bits);
    if (this.#chunks[index]!.has(key) && this.#writable(index).delete(key)) {
      this.#size--;
      (this.#changes[index] ??= new Map()).set(key, removed);
      this.#dirty.add(index);
    }
  }

  *entries(): IterableIterator<[Key, S]> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /**
   * The changed chunks, each as a delta or a base, and forget that they changed. If the state
   * outgrew its chunk count, the chunks split first and every chunk is returned as a base (the
   * chunk list is then replaced whole).
   */
  snapshotDirty(): ChunkSnapshot<S>[] {
    const perChunk = this.#size / this.#chunks.length;
    if (perChunk > this.maxChunkKeys) {
      this.#resize(this.#bits + Math.ceil(Math.log2(perChunk / (this.maxChunkKeys / 2))));
      this.touchAll();
    }
    const out: ChunkSnapshot<S>[] = [];
    for (const index of this.#dirty) {
      const entries = this.#chunks[index]!;
      const changes = this.#changes[index] ?? new Map<Key, S | typeof removed>();
      this.#changes[index] = undefined;
      const log = this.#logs[index]!;
      if (log.deltas >= 0 && log.deltas < this.maxDeltas && log.deltaKeys + changes.size <= log.baseKeys) {
        log.deltas++;
        log.deltaKeys += changes.size;
        out.push({ index, entries, changes });
      } else {
        log.baseKeys = entries.size;
        log.deltas = 0;
        log.deltaKeys = 0;
        this.#shared.add(index);
        out.push({ index, entries });
      }
    }
    this.#dirty.clear();
    return out.sort((a, b) => a.index - b.index);
  }

  /**
   * Split every chunk in two now (a chunk grew too large in bytes for one message). Chunks a
   * snapshot holds stay its own; every chunk is changed.
   */
  splitChunks(): void {
    this.#resize(this.#bits + 1);
    this.touchAll();
  }

  /** The entries of chunk `index`, read-only (a table flush encodes them at once). */
  chunkEntries(index: number): ReadonlyMap<Key, S> {
    return this.#chunks[index] ?? new Map();
  }

  /** A snapshot is done with a chunk: changing it no longer needs a copy (if it is still the same). */
  release(chunk: ChunkSnapshot<S>): void {
    if (this.#chunks[chunk.index] === chunk.entries) this.#shared.delete(chunk.index);
  }

  /**
   * Load chunk `index` from entries placed under the same chunk bits (at recovery). The chunk's
   * next write is a base.
   */
  loadEntries(index: number, chunk: Map<Key, S>): void {
    this.#shared.delete(index);
    this.#size += chunk.size - this.#chunks[index]!.size;
    this.#chunks[index] = chunk;
    this.#logs[index] = newLog();
  }

  /**
   * Load chunk `index` from its base and its deltas, as encoded by `encodeChunk` under the same
   * chunk bits, in the order they were written (at recovery).
   */
  loadChunk(index: number, base: Uint8Array, deltas: readonly Uint8Array[] = []): void {
    const chunk = new Map(JSON.parse(decoder.decode(base)) as [Key, S][]);
    for (const bytes of deltas) {
      for (const record of JSON.parse(decoder.decode(bytes)) as ([Key, S] | [Key])[]) {
        if (record.length === 1) chunk.delete(record[0]);
        else chunk.set(record[0], record[1]);
      }
    }
    this.loadEntries(index, chunk);
  }

  #resize(bits: number): void {
    const old = this.#chunks;
    this.#shared.clear(); // every chunk is new: what a snapshot holds stays its own
    this.#bits = bits;
    this.#chunks = Array.from({ length: 1 << bits }, () => new Map());
    this.#changes = new Array(1 << bits);
    this.#logs = Array.from({ length: 1 << bits }, newLog);
    for (const chunk of old) {
      for (const [key, value] of chunk) this.#chunks[chunkOf(keyHash(key), bits)]!.set(key, value);
    }
  }
}

function newLog(): ChunkLog {
  return { baseKeys: 0, deltas: -1, deltaKeys: 0 };
}
