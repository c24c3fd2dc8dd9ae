/**
 * The coffee-shop result tables computed independently of Eddy, straight from the generated
 * orders, folding each key's orders in publish order (so floating-point sums match exactly).
 */
import { generateOrders, menu, type Order } from "../../examples/coffee-shop/orders.ts";

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

export function expectedTables(seed: number, count: number) {
  return coffeeShopOracle(generateOrders({ seed, count }));
}
