/**
 * Keyed state of one operator actor: a map from key to a JSON-serialisable value, split into
 * 2^chunkBits chunks by hash so that a checkpoint touches only the chunks that changed (the chunk
 * count grows with the state). A checkpoint writes each changed chunk as a delta or a new base,
 * from a snapshot taken synchronously (copy-on-write); values of numbers only can be packed.
 * See docs/ARCHITECTURE.md, "Keyed state", for the chunk, delta and packing rules and figures.
 *
 * @example
 * const state = new KeyedState<number>();
 * state.set("store-1", keyHash("store-1"), 3);
 * const [chunk] = state.snapshotDirty(); // a base: { index: 0, entries: Map { "store-1" => 3 } }
 * encodeChunk(chunk); // Uint8Array of [["store-1",3]]
 * state.set("store-2", keyHash("store-2"), 5);
 * encodeChunk(state.snapshotDirty()[0]!); // a delta: Uint8Array of [["store-2",5]]
 */
import { chunkOf, type Key, keyHash } from "../core/partition.ts";

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

/** A chunk's base or delta as `encodeChunk` wrote it, decoded: a delta's `[key]` removes the key. */
export type ChunkRecords = readonly (readonly [Key, unknown] | readonly [Key])[];

export function decodeChunk(bytes: Uint8Array): ChunkRecords {
  return JSON.parse(decoder.decode(bytes)) as ChunkRecords;
}

/**
 * How a value packs into `width` numbers: `read` builds a value from the numbers at `at`, `write`
 * stores one there (it throws, writing nothing, if the value is not of the layout's shape; a null
 * number, JSON's NaN, is NaN).
 */
export interface NumericLayout<S> {
  readonly width: number;
  read(from: Float64Array, at: number): S;
  write(value: S, into: Float64Array, at: number): void;
}

/**
 * A chunk of packed values: key to slot in a Map, the slot's numbers in one Float64Array. A
 * removed key's slot is reused. Reads build a fresh value; iteration yields fresh values.
 */
class NumericChunk<S> implements ReadonlyMap<Key, S> {
  readonly #layout: NumericLayout<S>;
  #slots: Map<Key, number>;
  #numbers: Float64Array;
  #free: number[];
  /** Slots ever used (free ones included). */
  #end: number;

  constructor(layout: NumericLayout<S>, from?: NumericChunk<S>) {
    this.#layout = layout;
    this.#slots = from ? new Map(from.#slots) : new Map();
    this.#numbers = from ? from.#numbers.slice() : new Float64Array(16 * layout.width);
    this.#free = from ? from.#free.slice() : [];
    this.#end = from ? from.#end : 0;
  }

  get size(): number {
    return this.#slots.size;
  }

  has(key: Key): boolean {
    return this.#slots.has(key);
  }

  get(key: Key): S | undefined {
    const slot = this.#slots.get(key);
    return slot === undefined ? undefined : this.#layout.read(this.#numbers, slot * this.#layout.width);
  }

  set(key: Key, value: S): this {
    const width = this.#layout.width;
    let slot = this.#slots.get(key);
    const fresh = slot === undefined;
    if (slot === undefined) slot = this.#free.length > 0 ? this.#free[this.#free.length - 1]! : this.#end;
    if ((slot + 1) * width > this.#numbers.length) {
      const grown = new Float64Array(Math.ceil(this.#numbers.length * 1.5 / width + 1) * width);
      grown.set(this.#numbers);
      this.#numbers = grown;
    }
    this.#layout.write(value, this.#numbers, slot * width); // may throw: the key is not added then
    if (fresh) {
      if (slot === this.#end) this.#end++;
      else this.#free.pop();
      this.#slots.set(key, slot);
    }
    return this;
  }

  delete(key: Key): boolean {
    const slot = this.#slots.get(key);
    if (slot === undefined) return false;
    this.#slots.delete(key);
    this.#free.push(slot);
    return true;
  }

  *entries(): MapIterator<[Key, S]> {
    const { width } = this.#layout;
    for (const [key, slot] of this.#slots) yield [key, this.#layout.read(this.#numbers, slot * width)];
  }

  keys(): MapIterator<Key> {
    return this.#slots.keys();
  }

  *values(): MapIterator<S> {
    for (const [, value] of this.entries()) yield value;
  }

  forEach(callback: (value: S, key: Key, map: ReadonlyMap<Key, S>) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this);
  }

  [Symbol.iterator](): MapIterator<[Key, S]> {
    return this.entries();
  }
}

/** A chunk: a Map of values, or packed values when the state has a numeric layout. */
type Chunk<S> = Map<Key, S> | NumericChunk<S>;

/** Per chunk, what was written since its last base: -1 deltas means the next write is a base. */
interface ChunkLog {
  baseKeys: number;
  deltas: number;
  deltaKeys: number;
}

export class KeyedState<S> {
  #chunks: Chunk<S>[];
  /** Per chunk, the keys changed since the last snapshot (undefined: none tracked yet). */
  #changes: (Map<Key, S | typeof removed> | undefined)[];
  #logs: ChunkLog[];
  #dirty = new Set<number>();
  /** Chunks a snapshot holds: copy before changing them. */
  #shared = new Set<number>();
  #bits: number;
  #size = 0;
  /**
   * Chunks (under the current chunk bits) changed since their table pages were last written: a
   * table flush (actors/table-flush.ts) writes those pages and takes them out; a checkpoint,
   * which writes the pages of every chunk it writes, clears it.
   */
  readonly tableChanged = new Set<number>();

  constructor(
    chunkBits = 0,
    readonly maxChunkKeys = 2048,
    /** Deltas a chunk may have before it is written whole again. */
    readonly maxDeltas = 8,
    /** Pack values as numbers (every value must fit it). */
    readonly layout?: NumericLayout<S>,
  ) {
    this.#bits = chunkBits;
    this.#chunks = Array.from({ length: 1 << chunkBits }, () => this.#newChunk());
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

  #newChunk(): Chunk<S> {
    return this.layout ? new NumericChunk(this.layout) : new Map();
  }

  /** The chunk to change, copied first if a snapshot holds it. */
  #writable(index: number): Chunk<S> {
    if (this.#shared.delete(index)) {
      const chunk = this.#chunks[index]!;
      this.#chunks[index] = chunk instanceof NumericChunk ? new NumericChunk(this.layout!, chunk) : new Map(chunk);
    }
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
    this.tableChanged.add(index);
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
      this.tableChanged.add(index);
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
  loadEntries(index: number, entries: Map<Key, S>): void {
    if (!this.layout) return this.#install(index, entries);
    const chunk = this.#newChunk();
    for (const [key, value] of entries) chunk.set(key, value);
    this.#install(index, chunk);
  }

  #install(index: number, chunk: Chunk<S>): void {
    this.#shared.delete(index);
    this.#size += chunk.size - this.#chunks[index]!.size;
    this.#chunks[index] = chunk;
    this.#logs[index] = newLog();
  }

  /**
   * Load chunk `index` from its base and its deltas, as encoded by `encodeChunk` under the same
   * chunk bits and decoded by `decodeChunk`, in the order they were written (at recovery).
   */
  loadRecords(index: number, base: ChunkRecords, deltas: readonly ChunkRecords[] = []): void {
    const chunk = this.#newChunk();
    for (const [key, value] of base as readonly (readonly [Key, S])[]) chunk.set(key, value);
    for (const records of deltas) {
      for (const record of records) {
        if (record.length === 1) chunk.delete(record[0]);
        else chunk.set(record[0], record[1] as S);
      }
    }
    this.#install(index, chunk);
  }

  #resize(bits: number): void {
    const old = this.#chunks;
    this.#shared.clear(); // every chunk is new: what a snapshot holds stays its own
    this.#bits = bits;
    this.#chunks = Array.from({ length: 1 << bits }, () => this.#newChunk());
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
