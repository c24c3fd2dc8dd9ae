/**
 * An operator actor's recent inputs: a bounded ring of the last records it applied, fed once per
 * batch, oldest first; records a batch repeats (already applied) are not counted.
 */
import { describe, expect, it } from "vitest";
import type { Rec } from "../actors/operator.ts";
import { RecentInputs } from "../actors/recent-inputs.ts";

const rec = (seq: number): Rec => ({ seq, key: `k${seq}`, hash: seq, value: { n: seq }, time: seq, watermark: 0, via: "k" });
const batch = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => rec(from + i));

describe("recent inputs", () => {
  it("keeps the last records applied, oldest first, across batches", () => {
    const recent = new RecentInputs(4);
    expect(recent.list()).toEqual([]);
    recent.record(batch(1, 2), 0);
    expect(recent.list().map((r) => r.seq)).toEqual([1, 2]);
    recent.record(batch(3, 5), 2);
    expect(recent.list().map((r) => r.seq)).toEqual([2, 3, 4, 5]);
    recent.record(batch(6, 100), 5); // a batch larger than the ring: only its end is looked at
    expect(recent.list().map((r) => r.seq)).toEqual([97, 98, 99, 100]);
    const records = batch(101, 102);
    recent.record(records, 100);
    expect(recent.list().at(-1)).toBe(records[1]); // references, not copies
  });

  it("skips what a replayed batch already applied", () => {
    const recent = new RecentInputs(5);
    recent.record(batch(1, 3), 0);
    recent.record(batch(1, 6), 3); // 1..3 were applied before: only 4..6 are new
    expect(recent.list().map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6].slice(-5));
    recent.record(batch(5, 6), 6); // nothing new
    expect(recent.list().map((r) => r.seq)).toEqual([2, 3, 4, 5, 6]);
  });

  it("holds nothing with capacity 0", () => {
    const recent = new RecentInputs(0);
    recent.record(batch(1, 10), 0);
    expect(recent.list()).toEqual([]);
  });
});
