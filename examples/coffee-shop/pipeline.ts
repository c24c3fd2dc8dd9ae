/**
 * The coffee shop, the example Eddy is explained with: order events flow into the `orders`
 * stream; the pipeline joins them with the menu (a lookup table: item to category), keeps revenue
 * per category, and revenue, order count, items sold and the average ticket per store
 * and per item in two result tables that a dashboard reads, forwards large orders (4 items or
 * more) to the `large_orders` stream for the barista screen, and keeps revenue per store per
 * one-minute window (by the order's own time) in the `revenue_per_store_minute` table (and the
 * `revenue_per_minute` stream), orders too late for their minute per store (`late_orders`), and
 * the top 5 items per store over 5 minutes, every minute. With `orderStatus`, it also follows each
 * order through its lifecycle (order-lifecycle.ts: open orders, time to serve per store). It carries
 * its dashboard (dashboard/), which `eddy dev` and `eddy run --port` serve at `/`.
 *
 * @example
 * const worker = await Worker.start(nc, coffeeShop());
 * await readTable(nc, "revenue_by_store"); // [{ key: "store-1", orders: 42, revenue: 311.5, ... }]
 */
import { type Dashboard, type Pipeline, pipeline } from "@eddy/eddy";
import { html } from "./dashboard.generated.ts";
import { addOrderLifecycle } from "./order-lifecycle.ts";
import { MenuItem, Order } from "./orders.ts";

export interface CoffeeShopOptions {
  /** The stream holding the orders. Default "orders". */
  readonly stream?: string;
  readonly partitions?: number;
  /** The pipeline id (names its state). Default "coffee-shop". */
  readonly id?: string;
  /** Appended to the table names, to run two copies side by side. Default "". */
  readonly tableSuffix?: string;
  /** The stream of order status events: when given, the order lifecycle's steps are added. */
  readonly orderStatus?: string;
}

/** The coffee-shop dashboard (browser code in dashboard/, built by scripts/build-pages.ts). */
export const coffeeShopDashboard: Dashboard = { html };

export function coffeeShop(options: CoffeeShopOptions = {}): Pipeline {
  const p = pipeline(options.id ?? "coffee-shop", { partitions: options.partitions ?? 4, dashboard: coffeeShopDashboard });
  const menu = p.lookup("menu", { bucket: "menu", schema: MenuItem });
  const orders = p
    .source("orders", { stream: options.stream ?? "orders", schema: Order, eventTime: (o) => o.ts, maxOutOfOrderMs: 2_000 })
    .join("with-menu", menu, "item", (o, m) => ({ ...o, category: m.category }))
    .map("priced", (o) => ({ ...o, revenue: Math.round(o.qty * o.unitPrice * 100) / 100 }));

  orders
    .keyBy("by-store", "store")
    .aggregate("store-revenue", (a) => ({
      orders: a.count(),
      revenue: a.sum("revenue"),
      items: a.sum("qty"),
      avgTicket: a.avg("revenue"),
      largestOrder: a.max("revenue"),
    }))
    .toTable(`revenue_by_store${options.tableSuffix ?? ""}`);

  orders
    .keyBy("by-item", "item")
    .aggregate("item-revenue", (a) => ({
      orders: a.count(),
      revenue: a.sum("revenue"),
      sold: a.sum("qty"),
    }))
    .toTable(`revenue_by_item${options.tableSuffix ?? ""}`);

  orders
    .keyBy("by-category", "category")
    .aggregate("category-revenue", (a) => ({ orders: a.count(), revenue: a.sum("revenue") }))
    .toTable(`revenue_by_category${options.tableSuffix ?? ""}`);

  const perMinute = orders
    .keyBy("by-store-minute", "store")
    .window("minute", { size: 60_000 })
    .aggregate("store-minute", (a) => ({ orders: a.count(), revenue: a.sum("revenue") }));
  perMinute.toTable(`revenue_per_store_minute${options.tableSuffix ?? ""}`);
  perMinute.toStream("revenue-per-minute", { stream: `revenue_per_minute${options.tableSuffix ?? ""}` });
  // Orders too late for their minute, counted per store.
  perMinute
    .lateEvents("late-orders")
    .keyBy("late-by-store", "store")
    .aggregate("store-late", (a) => ({ orders: a.count(), revenue: a.sum("revenue") }))
    .toTable(`late_orders${options.tableSuffix ?? ""}`);

  orders
    .keyBy("by-store-5min", "store")
    .window("five-minutes", { size: 300_000, slide: 60_000 })
    .aggregate("top-items", (a) => ({ top: a.topN(5, "item", "qty") }))
    .toTable(`top_items_per_store${options.tableSuffix ?? ""}`);

  orders.filter("large", (o) => o.qty >= 4).toStream("large-orders", {
    stream: `large_orders${options.tableSuffix ?? ""}`,
    batched: true,
  });

  if (options.orderStatus) addOrderLifecycle(p, { stream: options.orderStatus, suffix: options.tableSuffix ?? "" });
  return p;
}
