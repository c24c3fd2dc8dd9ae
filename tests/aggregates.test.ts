/**
 * Aggregates as pure folds: results, immutability (a throwing fold changes nothing), merging for
 * sessions, topN's order (heaviest first, ties by key), and the numeric layout a state of numbers
 * packs into.
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

  it("packs a state of numbers (count, sum, min, max, avg) and round-trips it; other parts are not packed", () => {
    const numeric = compileAggregate({ n: a.count(), qty: a.sum("qty"), low: a.min("qty"), mean: a.avg("qty") });
    const layout = numeric.layout!;
    expect(layout.width).toBe(5); // avg is a [sum, count] pair
    let state = numeric.init(sales[0]!);
    for (const s of sales.slice(1)) state = numeric.add(state, s);
    const numbers = new Float64Array(2 * layout.width);
    layout.write(state, numbers, layout.width);
    expect(layout.read(numbers, layout.width)).toEqual(state);
    expect(numeric.row("k", layout.read(numbers, layout.width))).toEqual(numeric.row("k", state));
    // JSON wrote NaN as null: it reads back as NaN. Anything else that is not a number throws, storing nothing.
    layout.write([null, 1, 2, [3, 4]], numbers, 0);
    expect(layout.read(numbers, 0)).toEqual([Number.NaN, 1, 2, [3, 4]]);
    expect(() => layout.write([1, 2, 3, [4, "5"]], numbers, 0)).toThrow("where a number belongs");
    expect(layout.read(numbers, 0)).toEqual([Number.NaN, 1, 2, [3, 4]]);
    // Over an updating input the row count is one more number.
    expect(compileAggregate({ n: a.count(), mean: a.avg("qty") }, true).layout!.width).toBe(4);
    expect(compileAggregate({ n: a.count(), top: a.topN(2, "item") }).layout).toBeUndefined();
    expect(compileAggregate({ n: a.count(), items: a.reduce(0, (n) => n + 1) }).layout).toBeUndefined();
    expect(compileAggregate({ low: a.min("qty") }, true).layout).toBeUndefined(); // a multiset
  });

  it("topN ranks by weight, then key, and keeps n", () => {
    const top = compileAggregate({ top: a.topN(2, (s) => s.item) });
    let state = top.init({ item: "b", qty: 1 });
    for (const item of ["a", "c", "c", "b", "d"]) state = top.add(state, { item, qty: 1 });
    expect(top.row("k", state).top).toEqual([{ key: "b", weight: 2 }, { key: "c", weight: 2 }]);
  });
});
