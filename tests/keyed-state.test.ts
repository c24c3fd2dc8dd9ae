/**
 * Keyed state: a checkpoint serialises only the chunks that changed, as deltas of the changed keys
 * or, when the deltas would outgrow the chunk, as the whole chunk again; a chunk that grows too big
 * splits the state into more chunks; and what is written loads back to the same state, under any
 * sequence of updates, removals, checkpoints and crashes, with values kept as they are or packed
 * as numbers.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chunkOf, type Key, keyHash } from "../src/core/partition.ts";
import { type ChunkSnapshot, decodeChunk, encodeChunk, KeyedState, type NumericLayout } from "../src/state/keyed-state.ts";

const decode = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as unknown;

/**
 * What a checkpoint store keeps of one chunk, as the operator actor writes it: a base and the
 * deltas after it. `commit` applies a snapshot as src/state/checkpoint.ts does.
 */
class CommittedChunks {
  readonly chunks = new Map<number, { base: Uint8Array; deltas: Uint8Array[] }>();
  chunkBits = 0;

  commit(state: KeyedState<unknown>, snapshot: readonly ChunkSnapshot<unknown>[]): void {
    if (state.chunkBits !== this.chunkBits) this.chunks.clear();
    this.chunkBits = state.chunkBits;
    for (const chunk of snapshot) {
      const bytes = encodeChunk(chunk);
      if (!chunk.changes) this.chunks.set(chunk.index, { base: bytes, deltas: [] });
      else {
        const committed = this.chunks.get(chunk.index);
        if (!committed) throw new Error(`a delta of chunk ${chunk.index} without a base`);
        committed.deltas.push(bytes);
      }
      state.release(chunk);
    }
  }

  /** A new state from what is committed, as an actor's recovery builds it. */
  recover(maxChunkKeys: number, maxDeltas: number, layout?: NumericLayout<unknown>): KeyedState<unknown> {
    const state = new KeyedState<unknown>(this.chunkBits, maxChunkKeys, maxDeltas, layout);
    for (const [index, { base, deltas }] of this.chunks) state.loadRecords(index, decodeChunk(base), deltas.map(decodeChunk));
    state.touchAll(); // the first checkpoint after a recovery rewrites every chunk
    return state;
  }
}

const sorted = (entries: Iterable<[Key, unknown]>) => [...entries].sort((a, b) => String(a[0]).localeCompare(String(b[0])));

/** Values `[a, [b, c]]` packed as three numbers (the shape of an aggregate's count and avg). */
const packed: NumericLayout<unknown> = {
  width: 3,
  read: (from, at) => [from[at], [from[at + 1], from[at + 2]]],
  write(value, into, at) {
    const [a, [b, c]] = value as [unknown, [unknown, unknown]];
    if (typeof a !== "number" || typeof b !== "number" || typeof c !== "number") throw new Error("not numbers");
    into[at] = a;
    into[at + 1] = b;
    into[at + 2] = c;
  },
};

describe("keyed state", () => {
  it("writes only changed chunks", () => {
    const state = new KeyedState<number>(4);
    for (let i = 0; i < 1000; i++) state.set(`k${i}`, keyHash(`k${i}`), i);
    expect(state.snapshotDirty()).toHaveLength(16);
    expect(state.snapshotDirty()).toHaveLength(0);
    state.set("k7", keyHash("k7"), 70);
    const dirty = state.snapshotDirty();
    expect(dirty.map((d) => d.index)).toEqual([chunkOf(keyHash("k7"), 4)]);
    // The snapshot does not move with later updates.
    state.set("k7", keyHash("k7"), 71);
    expect(JSON.parse(new TextDecoder().decode(encodeChunk(dirty[0]!)))).toContainEqual(["k7", 70]);
  });

  it("splits chunks that grow past the limit and round-trips through its chunks", () => {
    const state = new KeyedState<number[]>(0, 100);
    for (let i = 0; i < 2000; i++) state.set(i, keyHash(i), [i, i * 2]);
    const chunks = state.snapshotDirty();
    expect(state.chunkBits).toBe(6); // 2000 keys at most 50 per chunk on average
    expect(chunks).toHaveLength(64);
    for (const c of chunks) expect(c.entries.size).toBeLessThan(100);

    const loaded = new KeyedState<number[]>(state.chunkBits, 100);
    for (const c of chunks) loaded.loadRecords(c.index, decodeChunk(encodeChunk(c)));
    expect(loaded.size).toBe(2000);
    expect(loaded.get(1234, keyHash(1234))).toEqual([1234, 2468]);
    expect([...loaded.entries()].sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(
      [...state.entries()].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
  });

  it("writes the changed keys of a chunk as a delta, and the whole chunk when deltas outgrow it", () => {
    const state = new KeyedState<number>(0, 10_000, 3);
    for (let i = 0; i < 10; i++) state.set(`k${i}`, keyHash(`k${i}`), i);
    const [first] = state.snapshotDirty();
    expect(first!.changes).toBeUndefined(); // never written: a base
    state.set("k1", keyHash("k1"), 100);
    state.delete("k2", keyHash("k2"));
    const [delta] = state.snapshotDirty();
    expect(delta!.changes).toBeDefined();
    expect(decode(encodeChunk(delta!))).toEqual([["k1", 100], ["k2"]]);
    // The delta is frozen: later changes go to the next one.
    state.set("k3", keyHash("k3"), 300);
    expect(decode(encodeChunk(delta!))).toEqual([["k1", 100], ["k2"]]);
    expect(decode(encodeChunk(state.snapshotDirty()[0]!))).toEqual([["k3", 300]]);
    // Three deltas so far (2 + 1 keys); a fourth would exceed maxDeltas: a base again.
    state.set("k4", keyHash("k4"), 400);
    expect(state.snapshotDirty()[0]!.changes).toBeDefined();
    state.set("k5", keyHash("k5"), 500);
    const [compacted] = state.snapshotDirty();
    expect(compacted!.changes).toBeUndefined();
    expect(decode(encodeChunk(compacted!))).toHaveLength(9);
    // Changes of more keys than the base holds: a base.
    for (let i = 0; i < 20; i++) state.set(`n${i}`, keyHash(`n${i}`), i);
    expect(state.snapshotDirty()[0]!.changes).toBeUndefined();
  });

  it("keeps packed values apart from the ones a snapshot holds, reuses removed slots, and rejects what does not fit", () => {
    const state = new KeyedState<unknown>(0, 10_000, 3, packed);
    for (let i = 0; i < 100; i++) state.set(`k${i}`, keyHash(`k${i}`), [i, [i * 2, 1]]);
    const [base] = state.snapshotDirty();
    expect(base!.changes).toBeUndefined();
    // Changed after the snapshot: the snapshot still encodes the values it was taken with.
    state.set("k1", keyHash("k1"), [-1, [-2, 2]]);
    state.delete("k2", keyHash("k2"));
    state.set("new", keyHash("new"), [7, [8, 9]]); // takes k2's slot
    const written = decode(encodeChunk(base!)) as [Key, unknown][];
    expect(written).toHaveLength(100);
    expect(written).toContainEqual(["k1", [1, [2, 1]]]);
    expect(written).toContainEqual(["k2", [2, [4, 1]]]);
    expect(state.get("k1", keyHash("k1"))).toEqual([-1, [-2, 2]]);
    expect(state.get("k2", keyHash("k2"))).toBeUndefined();
    expect(state.get("new", keyHash("new"))).toEqual([7, [8, 9]]);
    expect(state.size).toBe(100);
    // A value that does not fit throws and leaves the state as it was.
    expect(() => state.set("bad", keyHash("bad"), ["x", [1, 2]])).toThrow("not numbers");
    expect(() => state.set("k3", keyHash("k3"), [1, ["y", 2]])).toThrow("not numbers");
    expect(state.get("bad", keyHash("bad"))).toBeUndefined();
    expect(state.get("k3", keyHash("k3"))).toEqual([3, [6, 1]]);
    expect(state.size).toBe(100);
    // Delta, then recovery from base + delta: the same state, packed again.
    const [delta] = state.snapshotDirty();
    expect(decode(encodeChunk(delta!))).toEqual([["k1", [-1, [-2, 2]]], ["k2"], ["new", [7, [8, 9]]]]);
    const loaded = new KeyedState<unknown>(0, 10_000, 3, packed);
    loaded.loadRecords(0, decodeChunk(encodeChunk(base!)), [decodeChunk(encodeChunk(delta!))]);
    expect(sorted(loaded.entries())).toEqual(sorted(state.entries()));
  });

  it("recovers from bases and deltas what the updates made, across random checkpoints and crashes", () => {
    const op = fc.oneof(
      { weight: 12, arbitrary: fc.record({ kind: fc.constant("set" as const), key: fc.nat(300), value: fc.integer() }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant("delete" as const), key: fc.nat(300) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("checkpoint" as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("crash" as const) }) },
    );
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 300, size: "max" }),
        fc.integer({ min: 4, max: 64 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        (ops, maxKeys, maxDeltas, numeric) => {
          // Values as objects in Maps, or packed as numbers: the same behaviour and the same writes.
          const layout = numeric ? packed : undefined;
          const value = (v: number) => (numeric ? [v, [v * 2, v + 1]] : { v });
          const model = new Map<Key, unknown>(); // what is applied
          let committedModel = new Map<Key, unknown>(); // what the last checkpoint made durable
          const store = new CommittedChunks();
          let state = new KeyedState<unknown>(0, maxKeys, maxDeltas, layout);
          for (const o of ops) {
            if (o.kind === "set") {
              state.set(`k${o.key}`, keyHash(`k${o.key}`), value(o.value));
              model.set(`k${o.key}`, value(o.value));
            } else if (o.kind === "delete") {
              state.delete(`k${o.key}`, keyHash(`k${o.key}`));
              model.delete(`k${o.key}`);
            } else if (o.kind === "checkpoint") {
              store.commit(state, state.snapshotDirty());
              committedModel = new Map(model);
            } else {
              state = store.recover(maxKeys, maxDeltas, layout);
              expect(sorted(state.entries())).toEqual(sorted(committedModel));
              expect(state.size).toBe(committedModel.size);
              model.clear();
              for (const [k, v] of committedModel) model.set(k, v);
            }
            expect(state.size).toBe(model.size);
          }
          store.commit(state, state.snapshotDirty());
          expect(sorted(store.recover(maxKeys, maxDeltas, layout).entries())).toEqual(sorted(model));
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);

  it("hashes keys stably (FNV-1a over UTF-8)", () => {
    expect(keyHash("")).toBe(0x811c9dc5);
    expect(keyHash("a")).toBe(0xe40c292c);
    expect(keyHash("foobar")).toBe(0xbf9cf968);
    expect(keyHash("café")).toBe(keyHash("café"));
    expect(keyHash(42)).toBe(keyHash("42"));
  });
});
