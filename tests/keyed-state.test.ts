/**
 * Keyed state: a checkpoint serialises only the chunks that changed, a chunk that grows too big
 * splits the state into more chunks, and what is written loads back to the same state.
 */
import { describe, expect, it } from "vitest";
import { chunkOf, keyHash } from "../src/pipeline/partition.ts";
import { encodeChunk, KeyedState } from "../src/state/keyed-state.ts";

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
    for (const c of chunks) loaded.loadChunk(c.index, encodeChunk(c));
    expect(loaded.size).toBe(2000);
    expect(loaded.get(1234, keyHash(1234))).toEqual([1234, 2468]);
    expect([...loaded.entries()].sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(
      [...state.entries()].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
  });

  it("hashes keys stably (FNV-1a over UTF-8)", () => {
    expect(keyHash("")).toBe(0x811c9dc5);
    expect(keyHash("a")).toBe(0xe40c292c);
    expect(keyHash("foobar")).toBe(0xbf9cf968);
    expect(keyHash("café")).toBe(keyHash("café"));
    expect(keyHash(42)).toBe(keyHash("42"));
  });
});
