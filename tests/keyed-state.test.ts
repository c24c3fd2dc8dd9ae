/**
 * Keyed state: a checkpoint serialises only the chunks that changed, a chunk that grows too big
 * splits the state into more chunks, and what is written loads back to the same state.
 */
import { describe, expect, it } from "vitest";
import { chunkOf, keyHash } from "../src/pipeline/partition.ts";
import { KeyedState } from "../src/state/keyed-state.ts";

describe("keyed state", () => {
  it("writes only changed chunks", () => {
    const state = new KeyedState<number>(4);
    for (let i = 0; i < 1000; i++) state.set(`k${i}`, keyHash(`k${i}`), i);
    expect(state.takeDirty()).toHaveLength(16);
    expect(state.takeDirty()).toHaveLength(0);
    state.set("k7", keyHash("k7"), 70);
    const dirty = state.takeDirty();
    expect(dirty.map((d) => d.index)).toEqual([chunkOf(keyHash("k7"), 4)]);
    expect(JSON.parse(new TextDecoder().decode(dirty[0]!.bytes))).toContainEqual(["k7", 70]);
  });

  it("splits chunks that grow past the limit and round-trips through its chunks", () => {
    const state = new KeyedState<number[]>(0, 4096);
    for (let i = 0; i < 2000; i++) state.set(i, keyHash(i), [i, i * 2]);
    const chunks = state.takeDirty();
    expect(state.chunkBits).toBeGreaterThan(0);
    expect(chunks).toHaveLength(1 << state.chunkBits);
    for (const c of chunks) expect(c.bytes.length).toBeLessThanOrEqual(4096);

    const loaded = new KeyedState<number[]>(state.chunkBits, 4096);
    for (const c of chunks) loaded.loadChunk(c.index, c.bytes);
    expect(loaded.size).toBe(2000);
    expect(loaded.get(1234, keyHash(1234))).toEqual([1234, 2468]);
    expect([...loaded.entries()].sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([...state.entries()].sort((a, b) => Number(a[0]) - Number(b[0])));
  });

  it("hashes keys stably (FNV-1a over UTF-8)", () => {
    expect(keyHash("")).toBe(0x811c9dc5);
    expect(keyHash("a")).toBe(0xe40c292c);
    expect(keyHash("foobar")).toBe(0xbf9cf968);
    expect(keyHash("café")).toBe(keyHash("café"));
    expect(keyHash(42)).toBe(keyHash("42"));
  });
});
