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
import type { Aggregate } from "../../src/pipeline/aggregate.ts";

const BUCKETS = 64;

/** Counts per item in buckets (by item mod 64), and the highest count. */
export type HotItemsState = readonly [buckets: readonly Readonly<Record<string, number>>[], highest: number];

export interface HotItems {
  /** Every item with the highest count, ascending. */
  readonly items: number[];
  readonly count: number;
}

/** Count events per integer item `of(value)`; the result is every item with the highest count. */
export function hotItems<T>(of: (value: T) => number): Aggregate<T, HotItemsState, HotItems> {
  const add = (state: HotItemsState, value: T): HotItemsState => {
    const item = of(value);
    if (!Number.isInteger(item)) throw new Error(`hotItems: item ${item} is not an integer`);
    const b = ((item % BUCKETS) + BUCKETS) % BUCKETS;
    const buckets = state[0].slice();
    const count = (buckets[b]![item] ?? 0) + 1;
    buckets[b] = { ...buckets[b], [item]: count };
    return [buckets, Math.max(state[1], count)];
  };
  return {
    kind: "topN",
    init: (value) => add([Array.from({ length: BUCKETS }, () => ({})), 0], value),
    add,
    merge: (a, b) => {
      const buckets = a[0].map((bucket) => ({ ...bucket }));
      let highest = 0;
      for (let i = 0; i < BUCKETS; i++) {
        const into = buckets[i]!;
        for (const [item, n] of Object.entries(b[0][i]!)) into[item] = (into[item] ?? 0) + n;
        for (const n of Object.values(into)) highest = Math.max(highest, n);
      }
      return [buckets, highest];
    },
    result: ([buckets, highest]) => {
      const items: number[] = [];
      for (const bucket of buckets) {
        for (const item in bucket) if (bucket[item] === highest) items.push(Number(item));
      }
      return { items: items.sort((x, y) => x - y), count: highest };
    },
  };
}
