/**
 * Keyed state of one operator actor: a map from key to a JSON-serialisable value, split into
 * 2^chunkBits chunks by hash so that a checkpoint rewrites only the chunks that changed. When a
 * chunk holds more than `maxChunkKeys` keys, every chunk splits (the chunk count doubles), which
 * keeps chunks small: well under NATS's message size limit, and cheap to rewrite.
 *
 * A checkpoint takes a snapshot of the changed chunks synchronously and encodes and writes it
 * afterwards while records keep flowing. The snapshot is copy-on-write: it holds the chunk Maps
 * themselves, and a chunk is copied only if a record changes it before the checkpoint has
 * encoded it (values are replaced, never changed in place, so a shallow copy suffices).
 *
 * @example
 * const state = new KeyedState<number>();
 * state.set("store-1", keyHash("store-1"), 3);
 * const [chunk] = state.snapshotDirty(); // { index: 0, entries: Map { "store-1" => 3 } }
 * encodeChunk(chunk); // Uint8Array of [["store-1",3]]
 */
import { chunkOf, type Key, keyHash } from "../pipeline/partition.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface ChunkSnapshot<S> {
  readonly index: number;
  readonly entries: ReadonlyMap<Key, S>;
}

export function encodeChunk<S>(chunk: ChunkSnapshot<S>): Uint8Array {
  return encoder.encode(JSON.stringify([...chunk.entries]));
}

export class KeyedState<S> {
  #chunks: Map<Key, S>[];
  #dirty = new Set<number>();
  /** Chunks a snapshot holds: copy before changing them. */
  #shared = new Set<number>();
  #bits: number;
  #size = 0;

  constructor(
    chunkBits = 0,
    readonly maxChunkKeys = 2048,
  ) {
    this.#bits = chunkBits;
    this.#chunks = Array.from({ length: 1 << chunkBits }, () => new Map());
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
    this.#dirty.add(index);
  }

  /** Mark every chunk changed: the next snapshot holds the whole state. */
  touchAll(): void {
    for (let i = 0; i < this.#chunks.length; i++) this.#dirty.add(i);
  }

  delete(key: Key, hash: number): void {
    const index = chunkOf(hash, this.#bits);
    if (this.#chunks[index]!.has(key) && this.#writable(index).delete(key)) {
      this.#size--;
      this.#dirty.add(index);
    }
  }

  *entries(): IterableIterator<[Key, S]> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /**
   * Copy the changed chunks and forget that they changed. If the state outgrew its chunk count,
   * the chunks split first and every chunk is returned (the chunk list is then replaced whole).
   */
  snapshotDirty(): ChunkSnapshot<S>[] {
    const perChunk = this.#size / this.#chunks.length;
    if (perChunk > this.maxChunkKeys) {
      this.#resize(this.#bits + Math.ceil(Math.log2(perChunk / (this.maxChunkKeys / 2))));
      this.touchAll();
    }
    const out: ChunkSnapshot<S>[] = [];
    for (const index of this.#dirty) {
      out.push({ index, entries: this.#chunks[index]! });
      this.#shared.add(index);
    }
    this.#dirty.clear();
    return out.sort((a, b) => a.index - b.index);
  }

  /** The entries of chunk `index`, read-only (a table flush encodes them at once). */
  chunkEntries(index: number): ReadonlyMap<Key, S> {
    return this.#chunks[index] ?? new Map();
  }

  /** A snapshot is done with a chunk: changing it no longer needs a copy (if it is still the same). */
  release(chunk: ChunkSnapshot<S>): void {
    if (this.#chunks[chunk.index] === chunk.entries) this.#shared.delete(chunk.index);
  }

  /** Load chunk `index` from entries placed under the same chunk bits (at recovery). */
  loadEntries(index: number, chunk: Map<Key, S>): void {
    this.#shared.delete(index);
    this.#size += chunk.size - this.#chunks[index]!.size;
    this.#chunks[index] = chunk;
  }

  /** Load chunk `index` as encoded by `encodeChunk` under the same chunk bits (at recovery). */
  loadChunk(index: number, bytes: Uint8Array): void {
    this.loadEntries(index, new Map(JSON.parse(decoder.decode(bytes)) as [Key, S][]));
  }

  #resize(bits: number): void {
    const old = this.#chunks;
    this.#shared.clear(); // every chunk is new: what a snapshot holds stays its own
    this.#bits = bits;
    this.#chunks = Array.from({ length: 1 << bits }, () => new Map());
    for (const chunk of old) {
      for (const [key, value] of chunk) this.#chunks[chunkOf(keyHash(key), bits)]!.set(key, value);
    }
  }
}
