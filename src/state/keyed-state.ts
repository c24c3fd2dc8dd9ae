/**
 * Keyed state of one operator actor: a map from key to a JSON-serialisable value, split into
 * 2^chunkBits chunks by hash so that a checkpoint rewrites only the chunks that changed. A chunk
 * that grows past `maxChunkBytes` splits every chunk in two (the chunk count doubles), which
 * keeps each chunk well under NATS's message size limit.
 *
 * @example
 * const state = new KeyedState<number>();
 * state.set("store-1", keyHash("store-1"), 3);
 * state.takeDirty(); // [{ index: 0, bytes: Uint8Array }]
 */
import { chunkOf, type Key, keyHash } from "../pipeline/partition.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface DirtyChunk {
  readonly index: number;
  readonly bytes: Uint8Array;
}

export class KeyedState<S> {
  #chunks: Map<Key, S>[];
  #dirty = new Set<number>();
  #bits: number;
  #size = 0;

  constructor(
    chunkBits = 0,
    readonly maxChunkBytes = 256 * 1024,
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

  get(key: Key, hash: number): S | undefined {
    return this.#chunks[chunkOf(hash, this.#bits)]!.get(key);
  }

  /** Store a key's value and mark its chunk changed. */
  set(key: Key, hash: number, value: S): void {
    const index = chunkOf(hash, this.#bits);
    const chunk = this.#chunks[index]!;
    const before = chunk.size;
    chunk.set(key, value);
    this.#size += chunk.size - before;
    this.#dirty.add(index);
  }

  /** Mark a key's chunk changed after its value was updated in place. */
  touch(hash: number): void {
    this.#dirty.add(chunkOf(hash, this.#bits));
  }

  /** Mark every chunk changed: the next `takeDirty` returns the whole state. */
  touchAll(): void {
    for (let i = 0; i < this.#chunks.length; i++) this.#dirty.add(i);
  }

  delete(key: Key, hash: number): void {
    const index = chunkOf(hash, this.#bits);
    if (this.#chunks[index]!.delete(key)) {
      this.#size--;
      this.#dirty.add(index);
    }
  }

  *entries(): IterableIterator<[Key, S]> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /**
   * Serialise the changed chunks and forget that they changed. If a chunk is too big, the chunk
   * count grows and every chunk is returned (the caller then replaces the whole chunk list).
   */
  takeDirty(): DirtyChunk[] {
    const out: DirtyChunk[] = [];
    let largest = 0;
    for (const index of this.#dirty) {
      const bytes = encoder.encode(JSON.stringify([...this.#chunks[index]!]));
      largest = Math.max(largest, bytes.length);
      out.push({ index, bytes });
    }
    this.#dirty.clear();
    if (largest <= this.maxChunkBytes) return out;
    const factor = Math.ceil(largest / (this.maxChunkBytes / 2));
    this.#resize(this.#bits + Math.ceil(Math.log2(factor)));
    this.touchAll();
    return this.takeDirty();
  }

  /** Load chunk `index` as written by `takeDirty` under the same chunk bits (at recovery). */
  loadChunk(index: number, bytes: Uint8Array): void {
    const chunk = new Map(JSON.parse(decoder.decode(bytes)) as [Key, S][]);
    this.#size += chunk.size - this.#chunks[index]!.size;
    this.#chunks[index] = chunk;
  }

  #resize(bits: number): void {
    const old = this.#chunks;
    this.#bits = bits;
    this.#chunks = Array.from({ length: 1 << bits }, () => new Map());
    for (const chunk of old) {
      for (const [key, value] of chunk) this.#chunks[chunkOf(keyHash(key), bits)]!.set(key, value);
    }
  }
}
