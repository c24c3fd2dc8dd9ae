/**
 * The coffee-shop result tables computed independently of Eddy, straight from the generated
 * orders, folding each key's orders in publish order (so floating-point sums match exactly).
 */
import { generateOrders, type Order } from "../../examples/coffee-shop/orders.ts";

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

export function coffeeShopOracle(orders: Iterable<Order>): { byStore: Map<string, StoreRow>; byItem: Map<string, ItemRow> } {
  const byStore = new Map<string, StoreRow>();
  const byItem = new Map<string, ItemRow>();
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
    const i = byItem.get(o.item);
    if (!i) byItem.set(o.item, { key: o.item, orders: 1, revenue, sold: o.qty });
    else {
      i.orders++;
      i.revenue += revenue;
      i.sold += o.qty;
    }
  }
  return { byStore, byItem };
}

export function expectedTables(seed: number, count: number) {
  return coffeeShopOracle(generateOrders({ seed, count }));
}
