/**
 * The coffee-shop result tables computed independently of Eddy, straight from the generated
 * orders, folding each key's orders in publish order (so floating-point sums match exactly).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { expect } from "vitest";
import { generateOrders, menu, type Order } from "../../examples/coffee-shop/orders.ts";
import { coffeeShop } from "../../examples/coffee-shop/pipeline.ts";
import { evaluate } from "../../src/oracle/batch.ts";
import { listTables, readTable } from "../../src/state/table.ts";
import { readStreamJson } from "./nats.ts";
import { windowOracle } from "./window-oracle.ts";

export interface StoreRow {
  key: string;
  orders: number;
  revenue: number;
  items: number;
  avgTicket: number;
  largestOrder: number;
}
export interface ItemRow {
  key: string;
  orders: number;
  revenue: number;
  sold: number;
}

export interface CategoryRow {
  key: string;
  orders: number;
  revenue: number;
}

export function coffeeShopOracle(orders: Iterable<Order>): {
  byStore: Map<string, StoreRow>;
  byItem: Map<string, ItemRow>;
  byCategory: Map<string, CategoryRow>;
} {
  const byStore = new Map<string, StoreRow>();
  const byItem = new Map<string, ItemRow>();
  const byCategory = new Map<string, CategoryRow>();
  const categoryOf = new Map(menu.map((m) => [m.item, m.category]));
  for (const o of orders) {
    const revenue = Math.round(o.qty * o.unitPrice * 100) / 100;
    const s = byStore.get(o.store);
    if (!s) byStore.set(o.store, { key: o.store, orders: 1, revenue, items: o.qty, avgTicket: revenue, largestOrder: revenue });
    else {
      s.orders++;
      s.revenue += revenue;
      s.items += o.qty;
      s.largestOrder = Math.max(s.largestOrder, revenue);
      s.avgTicket = s.revenue / s.orders;
    }
    const category = categoryOf.get(o.item)!;
    const c = byCategory.get(category);
    if (!c) byCategory.set(category, { key: category, orders: 1, revenue });
    else {
      c.orders++;
      c.revenue += revenue;
    }
    const i = byItem.get(o.item);
    if (!i) byItem.set(o.item, { key: o.item, orders: 1, revenue, sold: o.qty });
    else {
      i.orders++;
      i.revenue += revenue;
      i.sold += o.qty;
    }
  }
  return { byStore, byItem, byCategory };
}

const byId = (a: Order, b: Order) => (a.orderId < b.orderId ? -1 : a.orderId > b.orderId ? 1 : 0);

export function expectedTables(seed: number, count: number) {
  return coffeeShopOracle(generateOrders({ seed, count }));
}

/**
 * Every coffee-shop result table, stream sink and window equals what the `count` orders of
 * `seed` give, computed independently and by the batch evaluation of the same pipeline. `stored`:
 * the same orders in the order their stream holds them, when that is not the order generated (a
 * publish retried across a cluster's leader election lands after later ones); sums of floats,
 * lateness and the sink's order follow the stream's order.
 */
export async function expectExactCoffeeShop(
  nc: NatsConnection,
  seed: number,
  count: number,
  stored?: readonly Order[],
): Promise<void> {
  const generated = [...generateOrders({ seed, count })];
  if (stored) {
    expect([...stored].sort(byId), "the stream holds the generated orders, each once").toEqual([...generated].sort(byId));
  }
  const orders = stored ?? generated;
  const { byStore, byItem, byCategory } = coffeeShopOracle(orders);
  const categories = await readTable<CategoryRow>(nc, "revenue_by_category");
  expect(new Map(categories.map((r) => [r.key, r]))).toEqual(byCategory);
  const stores = await readTable<StoreRow>(nc, "revenue_by_store");
  expect(new Map(stores.map((r) => [r.key, r]))).toEqual(byStore);
  const items = await readTable<ItemRow>(nc, "revenue_by_item");
  expect(new Map(items.map((r) => [r.key, r]))).toEqual(byItem);

  // The stream sink: every large order exactly once, although replays published some again.
  const large = orders.filter((o) => o.qty >= 4).map((o) => o.orderId);
  const sunk = await readStreamJson<{ orderId: string }>(nc, "large_orders");
  expect(sunk.map((o) => o.orderId)).toEqual(large);

  // Windows: every closed store-minute exactly once, equal to the batch definition.
  const { fired } = windowOracle([...orders], 60_000, 60_000, 2_000);
  const byWindow = (a: { key: string; windowStart: number }, b: { key: string; windowStart: number }) =>
    a.key.localeCompare(b.key) || a.windowStart - b.windowStart;
  const minutes = await readStreamJson<
    { key: string; windowStart: number; windowEnd: number; orders: number; revenue: number }
  >(nc, "revenue_per_minute");
  const want = fired.map(({ key, windowStart, windowEnd, orders, revenue }) => ({
    key,
    windowStart,
    windowEnd,
    orders,
    revenue,
  })).sort(byWindow);
  expect(minutes.sort(byWindow)).toEqual(want);
  const minuteRows = await readTable<(typeof minutes)[number]>(nc, "revenue_per_store_minute");
  expect(minuteRows.sort(byWindow)).toEqual(want);

  // And every table equals the batch evaluation of the same pipeline definition.
  const batch = evaluate(coffeeShop(), { orders: [...orders] }, {
    menu: new Map(menu.map((m) => [m.item, { category: m.category, price: m.price }])),
  });
  expect(Object.keys(batch.tables).sort()).toEqual(await listTables(nc));
  for (const [name, rows] of Object.entries(batch.tables)) {
    const streamed = await readTable<{ key: string; windowStart?: number }>(nc, name);
    const order = (a: { key: string; windowStart?: number }, b: { key: string; windowStart?: number }) =>
      a.key.localeCompare(b.key) || (a.windowStart ?? 0) - (b.windowStart ?? 0);
    expect(streamed.sort(order)).toEqual((rows as { key: string; windowStart?: number }[]).sort(order));
  }
}
