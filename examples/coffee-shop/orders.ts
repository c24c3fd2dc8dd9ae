/**
 * The coffee shop's order events: the source stream the whole project is explained with.
 *
 * `generateOrders` is a deterministic generator: the same seed gives the same orders, byte for
 * byte, so a streaming run and the batch oracle can be fed the very same events. Popularity is
 * skewed (lattes sell far more than hot chocolate) so group-by and top-N results are interesting,
 * and event time runs slightly out of order: an order's `ts` is at most `maxDisorderMs` earlier
 * than the `ts` of any order generated before it, which is the bounded out-of-orderness a
 * watermark is built on.
 *
 * `publishOrders` writes them into a JetStream stream through the ack-counting Publisher, with
 * `Nats-Msg-Id` = orderId, so publishing the same seed twice stores every order once.
 *
 * `generateOrderStatus` follows the same orders through their lifecycle (placed, brewing, served,
 * or never brewed: abandoned) as events of their own, for the `order_status` stream; it draws from
 * its own random sequence, so the orders above are the same with or without it.
 *
 * @example
 * const first = [...generateOrders({ seed: 7, count: 3 })];
 * // [{ orderId: "o-7-1", store: "store-1", item: "espresso", qty: 4, unitPrice: 2.5, ts: 1704095999948 }, ...]
 * await publishOrders(nc, { stream: "ORDERS", seed: 7, count: 10_000, ratePerSec: 2_000 });
 */
import { Schema } from "effect";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { ensureStream, keyHash, type Outgoing, publishAll, type PublishAllOptions } from "@eddy/eddy";

export const Order = Schema.Struct({
  orderId: Schema.String,
  store: Schema.String,
  item: Schema.String,
  qty: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  unitPrice: Schema.Number.pipe(Schema.greaterThanOrEqualTo(0)),
  /** Event time: when the order was placed, epoch milliseconds. */
  ts: Schema.Number,
});
export type Order = typeof Order.Type;

export type MenuCategory = "coffee" | "tea" | "other" | "pastry";

/** The menu the orders are joined with: item name, category, price. */
export const menu: ReadonlyArray<{ readonly item: string; readonly category: MenuCategory; readonly price: number }> = [
  { item: "espresso", category: "coffee", price: 2.5 },
  { item: "americano", category: "coffee", price: 3.0 },
  { item: "latte", category: "coffee", price: 3.8 },
  { item: "cappuccino", category: "coffee", price: 3.6 },
  { item: "flat-white", category: "coffee", price: 3.7 },
  { item: "mocha", category: "coffee", price: 4.2 },
  { item: "cold-brew", category: "coffee", price: 4.0 },
  { item: "chai-latte", category: "tea", price: 3.9 },
  { item: "matcha-latte", category: "tea", price: 4.3 },
  { item: "hot-chocolate", category: "other", price: 3.2 },
  { item: "croissant", category: "pastry", price: 2.8 },
  { item: "blueberry-muffin", category: "pastry", price: 3.1 },
];

/** A value of the `menu` lookup table (KV bucket `menu`, keyed by item). */
export const MenuItem = Schema.Struct({ category: Schema.String, price: Schema.Number });
export type MenuItem = typeof MenuItem.Type;

/** Put the menu into the `menu` KV bucket, creating it when missing (entries only if it was empty). */
export async function publishMenu(nc: NatsConnection, bucket = "menu"): Promise<void> {
  const kv = await new Kvm(nc).create(bucket, { history: 1, storage: "file" });
  if ((await kv.status()).values > 0) return;
  for (const { item, category, price } of menu) await kv.put(item, JSON.stringify({ category, price }));
}

/** Relative popularity, aligned with `menu`: latte sells 60 times as often as hot chocolate. */
const popularity = [10, 12, 30, 18, 8, 5, 6, 3, 2, 0.5, 4, 1.5];
/** Relative frequency of qty 1, 2, 3, 4. */
const quantities = [60, 25, 10, 5];

/** 2024-01-01T08:00:00Z: the default first event time, fixed so that output is deterministic. */
export const defaultStartTime = Date.UTC(2024, 0, 1, 8, 0, 0);
/** How far back in event time an order may land behind any order generated before it. */
export const maxDisorderMs = 2000;

export interface GenerateOrdersOptions {
  readonly seed: number;
  readonly count: number;
  /** Number of stores, `store-1` .. `store-<n>`. Default 5. */
  readonly stores?: number;
  /** Order n (from 1) has event time `startTime + (n-1) * spacingMs`, minus a jitter below
   *  `maxDisorderMs`. Default `defaultStartTime`. */
  readonly startTime?: number;
  /** Event-time step between consecutive orders. Default 100 ms. */
  readonly spacingMs?: number;
}

/** mulberry32: a tiny seeded PRNG with 32 bits of state, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pick an index with probability proportional to its weight. */
function weighted(weights: readonly number[]): (u: number) => number {
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push(sum += w / total);
  return (u) => {
    const i = cumulative.findIndex((c) => u < c);
    return i === -1 ? weights.length - 1 : i;
  };
}

const pickItem = weighted(popularity);
const pickQty = weighted(quantities);

export function* generateOrders(opts: GenerateOrdersOptions): Generator<Order> {
  const random = mulberry32(opts.seed);
  const stores = opts.stores ?? 5;
  const startTime = opts.startTime ?? defaultStartTime;
  const spacingMs = opts.spacingMs ?? 100;
  for (let n = 1; n <= opts.count; n++) {
    const { item, price } = menu[pickItem(random())] as (typeof menu)[number];
    const store = `store-${1 + Math.floor(random() * stores)}`;
    const qty = 1 + pickQty(random());
    // Most orders arrive nearly in order; one in ten is up to maxDisorderMs late.
    const late = random() < 0.1;
    const jitter = Math.floor(random() * (late ? maxDisorderMs : Math.min(spacingMs, maxDisorderMs)));
    const ts = startTime + (n - 1) * spacingMs - jitter;
    yield { orderId: `o-${opts.seed}-${n}`, store, item, qty, unitPrice: price, ts };
  }
}

/** Pacing, progress and stopping as in `publishAll`. */
export interface PublishOrdersOptions extends GenerateOrdersOptions, PublishAllOptions {
  readonly stream: string;
  /** Orders go to `<prefix>.<store>`. Default "orders". */
  readonly subjectPrefix?: string;
}

/**
 * Publish `count` generated orders as JSON, each with msg id = orderId, and wait until JetStream
 * has acknowledged all of them. Creates the stream (file storage, 10-minute duplicate window) if it
 * does not exist, and the `menu` lookup table.
 */
export async function publishOrders(
  nc: NatsConnection,
  opts: PublishOrdersOptions,
): Promise<{ published: number }> {
  const prefix = opts.subjectPrefix ?? "orders";
  await ensureStream(nc, opts.stream, [`${prefix}.>`]);
  await publishMenu(nc);
  return { published: await publishAll(nc, orderMessages(generateOrders(opts), prefix), opts) };
}

/** Orders as messages to `<prefix>.<store>`, msg id = orderId. */
export function* orderMessages(orders: Iterable<Order>, prefix: string): Generator<Outgoing> {
  for (const order of orders) yield { subject: `${prefix}.${order.store}`, value: order, msgId: order.orderId };
}

/** A step in an order's life, on the `order_status` stream: placed, brewing, served. */
export const OrderStatus = Schema.Struct({
  type: Schema.Literal("placed", "brewing", "served"),
  orderId: Schema.String,
  store: Schema.String,
  /** Event time: when it happened, epoch milliseconds. */
  ts: Schema.Number,
});
export type OrderStatus = typeof OrderStatus.Type;

export interface GenerateOrderStatusOptions extends GenerateOrdersOptions {
  /** The share of orders never brewed (abandoned). Default 0.1. */
  readonly abandonRate?: number;
}

/**
 * One order's lifecycle events: placed at its `ts`; then, unless it is never brewed (abandoned,
 * with probability `abandonRate`), brewing 5 to 60 s later and served 30 to 120 s after that. The
 * draws come from the order's own random sequence (the seed and a hash of its id), so the same
 * order always has the same lifecycle, however the orders around it are generated.
 */
export function lifecycleOf(order: Order, opts: { readonly seed: number; readonly abandonRate?: number }): OrderStatus[] {
  const random = mulberry32(opts.seed ^ 0x5eed ^ keyHash(order.orderId));
  const { orderId, store, ts } = order;
  const placed: OrderStatus = { type: "placed", orderId, store, ts };
  if (random() < (opts.abandonRate ?? 0.1)) return [placed];
  const brewing = ts + 5_000 + Math.floor(random() * 55_000);
  const served = brewing + 30_000 + Math.floor(random() * 90_000);
  return [placed, { type: "brewing", orderId, store, ts: brewing }, { type: "served", orderId, store, ts: served }];
}

/** The longest an order's lifecycle lasts, placed to served. */
export const lifecycleSpanMs = 180_000;

/**
 * The lifecycle events of the orders `generateOrders` gives for the same options (`lifecycleOf`),
 * as far as they happened by the time the last order was placed (the day so far: later orders are
 * still open). Events come in event-time order with the same bounded disorder as orders (at most
 * `maxDisorderMs` behind any event before them); an order's own events stay in order.
 */
export function* generateOrderStatus(opts: GenerateOrderStatusOptions): Generator<OrderStatus> {
  const random = mulberry32(opts.seed ^ 0x5eed);
  const events: { event: OrderStatus; arrival: number }[] = [];
  const orders = [...generateOrders(opts)];
  const end = Math.max(...orders.map((o) => o.ts));
  for (const order of orders) {
    for (const event of lifecycleOf(order, opts)) {
      const arrival = event.ts + Math.floor(random() * maxDisorderMs);
      if (event.ts <= end) events.push({ event, arrival });
    }
  }
  events.sort((a, b) => a.arrival - b.arrival);
  for (const { event } of events) yield event;
}

/**
 * Publish the lifecycle events of `count` generated orders to `<prefix>.<store>` (default prefix
 * "order_status"), each with msg id `<orderId>/<type>`, and wait until all are acknowledged.
 * Creates the stream when missing.
 */
export async function publishOrderStatus(
  nc: NatsConnection,
  opts: GenerateOrderStatusOptions & { readonly stream: string; readonly subjectPrefix?: string },
): Promise<{ published: number }> {
  const prefix = opts.subjectPrefix ?? "order_status";
  await ensureStream(nc, opts.stream, [`${prefix}.>`]);
  return { published: await publishAll(nc, statusMessages(generateOrderStatus(opts), prefix)) };
}

/** Lifecycle events as messages to `<prefix>.<store>`, msg id `<orderId>/<type>`. */
export function* statusMessages(events: Iterable<OrderStatus>, prefix: string): Generator<Outgoing> {
  for (const e of events) yield { subject: `${prefix}.${e.store}`, value: e, msgId: `${e.orderId}/${e.type}` };
}
