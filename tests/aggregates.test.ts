/**
 * Aggregates as pure folds: results, immutability (a throwing fold changes nothing), merging for
 * sessions, and topN's order (heaviest first, ties by key).
 */
import { describe, expect, it } from "vitest";
import { aggregates, compileAggregate } from "../src/pipeline/aggregate.ts";

interface Sale {
  item: string;
  qty: number;
}

describe("aggregates", () => {
  const a = aggregates<Sale>();
  const spec = compileAggregate({
    n: a.count(),
    qty: a.sum("qty"),
    low: a.min("qty"),
    high: a.max("qty"),
    mean: a.avg("qty"),
    top: a.topN(2, "item", "qty"),
  });
  const sales: Sale[] = [
    { item: "latte", qty: 2 },
    { item: "mocha", qty: 3 },
    { item: "espresso", qty: 1 },
    { item: "latte", qty: 1 },
    { item: "espresso", qty: 2 },
  ];

  it("folds events into one row", () => {
    let state = spec.init(sales[0]!);
    for (const s of sales.slice(1)) state = spec.add(state, s);
    expect(spec.row("store-1", state)).toEqual({
      key: "store-1",
      n: 5,
      qty: 9,
      low: 1,
      high: 3,
      mean: 1.8,
      // latte 3, mocha 3, espresso 3: all tied, so by key
      top: [{ key: "espresso", weight: 3 }, { key: "latte", weight: 3 }],
    });
  });

  it("never changes a state in place, and merges two states as one fold", () => {
    const first = spec.init(sales[0]!);
    const copy = structuredClone(first);
    spec.add(first, sales[1]!);
    expect(first).toEqual(copy);
    let left = spec.init(sales[0]!);
    left = spec.add(left, sales[1]!);
    let right = spec.init(sales[2]!);
    for (const s of sales.slice(3)) right = spec.add(right, s);
    let all = spec.init(sales[0]!);
    for (const s of sales.slice(1)) all = spec.add(all, s);
    expect(spec.row("k", spec.merge(left, right))).toEqual(spec.row("k", all));
  });

  it("topN ranks by weight, then key, and keeps n", () => {
    const top = compileAggregate({ top: a.topN(2, (s) => s.item) });
    let state = top.init({ item: "b", qty: 1 });
    for (const item of ["a", "c", "c", "b", "d"]) state = top.add(state, { item, qty: 1 });
    expect(top.row("k", state).top).toEqual([{ key: "b", weight: 2 }, { key: "c", weight: 2 }]);
  });
});
