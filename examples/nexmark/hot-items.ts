/**
 * `hotItems`: an aggregate that counts events per item and returns every item with the highest
 * count (all of them when several tie, in ascending order), with that count. Nexmark q5's "hot
 * items" is this per hopping window, keyed by nothing.
 *
 * Why not `a.topN(1, "auction")`: topN keeps one ties-broken winner where q5 wants every tied
 * auction, and its state is one object copied whole on each event (aggregate states are replaced,
 * never changed in place: a checkpoint may be encoding the old one). With thousands of auctions in
 * a window, that copy is the whole cost. Here the counts are split by item into 64 buckets and an
 * event copies the bucket list and one bucket, about 1/64 of the state; the highest count is kept
 * beside them (counts only grow), so the result needs no second pass over the buckets to find it.
 *
 * @example
 * bids.keyBy("all", () => 0)
 *   .window("hop", { size: 10_000, slide: 2_000 })
 *   .aggregate("hot", () => ({ hottest: hotItems<Bid>((b) => b.auction) }));
 * // rows: { key: 0, windowStart, windowEnd, hottest: { items: [1100], count: 412 } }
 */
import type { Aggregate } from "@eddy/eddy";

const BUCKETS = 64;

/**
 * Counts per item in 64 buckets (by item mod 64), each a flat list `[item, count, item, count,
 * ...]`, and the highest count. Flat number lists copy as one block; objects keyed by integers
 * made each copy hundreds of times slower.
 */
export type HotItemsState = readonly [buckets: readonly (readonly number[])[], highest: number];

export interface HotItems {
  /** Every item with the highest count, ascending. */
  readonly items: number[];
  readonly count: number;
}

/** `bucket` with `n` more for `item`: a new list. */
function counted(bucket: readonly number[], item: number, n: number): number[] {
  const next = bucket.slice();
  for (let i = 0; i < next.length; i += 2) {
    if (next[i] === item) {
      next[i + 1]! += n;
      return next;
    }
  }
  next.push(item, n);
  return next;
}

/** Count events per integer item `of(value)`; the result is every item with the highest count. */
export function hotItems<T>(of: (value: T) => number): Aggregate<T, HotItemsState, HotItems> {
  const add = (state: HotItemsState, value: T): HotItemsState => {
    const item = of(value);
    if (!Number.isInteger(item)) throw new Error(`hotItems: item ${item} is not an integer`);
    const b = ((item % BUCKETS) + BUCKETS) % BUCKETS;
    const buckets = state[0].slice();
    const bucket = counted(buckets[b]!, item, 1);
    buckets[b] = bucket;
    let highest = state[1];
    for (let i = 1; i < bucket.length; i += 2) if (bucket[i - 1] === item) highest = Math.max(highest, bucket[i]!);
    return [buckets, highest];
  };
  return {
    kind: "topN",
    init: (value) => add([Array.from({ length: BUCKETS }, () => []), 0], value),
    add,
    merge: (a, b) => {
      let highest = 0;
      const buckets = a[0].map((bucket, i) => {
        let merged = bucket;
        const other = b[0][i]!;
        for (let j = 0; j < other.length; j += 2) merged = counted(merged, other[j]!, other[j + 1]!);
        for (let j = 1; j < merged.length; j += 2) highest = Math.max(highest, merged[j]!);
        return merged;
      });
      return [buckets, highest];
    },
    result: ([buckets, highest]) => {
      const items: number[] = [];
      for (const bucket of buckets) {
        for (let i = 1; i < bucket.length; i += 2) if (bucket[i] === highest) items.push(bucket[i - 1]!);
      }
      return { items: items.sort((x, y) => x - y), count: highest };
    },
  };
}
