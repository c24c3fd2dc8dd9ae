/**
 * The coffee shop open for business in real time, as `eddy dev` runs it: every second a round of
 * orders (`rate` per second, event time = the clock) goes to the orders stream, and each order's
 * lifecycle events (`lifecycleOf`: placed, brewing, served) go to the order status stream as they
 * fall due on the clock, so an order brews and is served a minute or two after it was placed.
 *
 * Lifecycle events not yet due wait in memory. A shop that restarts finds them again: it reads the
 * orders stored in the last `lifecycleSpanMs` (by the stream's store time) and recomputes their
 * lifecycles (each a function of the order alone). It publishes again the events that are due;
 * those published before the restart carry the same msg id `<orderId>/<type>`, so JetStream drops
 * the repeats inside the stream's duplicate window, and the events that fell due while the shop was
 * down arrive now. Either way no order is left waiting for an event that never comes.
 *
 * @example
 * const shop = openShop(nc, { rate: 20, seed: 1, onRound: (n) => console.log(n.orders) });
 * await shop.ready; // streams exist, pending lifecycles recovered
 * await shop.stop();
 */
import { DeliverPolicy } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, ensureStream, publishAll, readStream, systemClock } from "@eddy/eddy";
import {
  generateOrders,
  lifecycleOf,
  lifecycleSpanMs,
  type Order,
  orderMessages,
  type OrderStatus,
  publishOrders,
  statusMessages,
} from "./orders.ts";

export interface LiveShopOptions {
  /** Orders per second; 0 publishes nothing (the streams are still created). */
  readonly rate: number;
  /** Stop placing orders after this many; 0 = never. Lifecycles of placed orders still run on. */
  readonly count?: number;
  readonly seed: number;
  /** Default "orders" (subjects `orders.<store>`). */
  readonly ordersStream?: string;
  /** Default "order_status" (subjects `order_status.<store>`). */
  readonly statusStream?: string;
  readonly clock?: Clock;
  /** After each round: totals published so far. */
  readonly onRound?: (totals: { readonly orders: number; readonly statuses: number }) => void;
  /** A round failed (e.g. NATS unreachable for longer than the publisher retries); the next round tries again. */
  readonly onError?: (error: unknown) => void;
}

export interface LiveShop {
  /** Resolves once the streams exist and pending lifecycles are recovered. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

export function openShop(nc: NatsConnection, opts: LiveShopOptions): LiveShop {
  const clock = opts.clock ?? systemClock;
  const ordersStream = opts.ordersStream ?? "orders";
  const statusStream = opts.statusStream ?? "order_status";
  const count = opts.count ?? 0;
  /** Lifecycle events not yet published, in event-time order. */
  let pending: OrderStatus[] = [];
  const totals = { orders: 0, statuses: 0 };
  let stopped = false;
  let wake: (() => void) | undefined;

  const schedule = (orders: Iterable<Order>) => {
    for (const order of orders) pending.push(...lifecycleOf(order, { seed: opts.seed }));
    pending.sort((a, b) => a.ts - b.ts);
  };
  const publishDue = async () => {
    const now = clock.now();
    const due = pending.findIndex((e) => e.ts > now);
    const batch = due === -1 ? pending : pending.slice(0, due);
    if (batch.length === 0) return;
    await publishAll(nc, statusMessages(batch, statusStream), { clock });
    pending = due === -1 ? [] : pending.slice(due);
    totals.statuses += batch.length;
  };

  const start = (async () => {
    await publishOrders(nc, { stream: ordersStream, seed: opts.seed, count: 0 }); // creates the stream and the menu
    await ensureStream(nc, statusStream, [`${statusStream}.>`]);
    schedule(await recentOrders(nc, ordersStream, clock.now() - lifecycleSpanMs));
  })();
  const loop = start.then(async () => {
    if (opts.rate <= 0) return;
    while (!stopped) {
      const started = clock.now();
      try {
        const n = count === 0 ? opts.rate : Math.min(opts.rate, count - totals.orders);
        if (n > 0) {
          const round = { seed: opts.seed * 1_000_003 + started, count: n, startTime: started, spacingMs: 1000 / opts.rate };
          const orders = [...generateOrders(round)];
          await publishAll(nc, orderMessages(orders, ordersStream), { clock });
          totals.orders += n;
          schedule(orders);
        }
        await publishDue();
        opts.onRound?.(totals);
      } catch (error) {
        opts.onError?.(error);
      }
      const wait = started + 1000 - clock.now();
      if (wait > 0 && !stopped) await new Promise<void>((r) => ((wake = r), clock.setTimeout(r, wait)));
    }
  });

  return {
    ready: start,
    async stop() {
      stopped = true;
      wake?.();
      await loop.catch(() => undefined);
    },
  };
}

/**
 * The orders stored in `stream` in the last `lifecycleSpanMs` of wall-clock time (the stream's
 * store time) whose event time is at or after `since` (the shop's clock, which a test may drive).
 */
async function recentOrders(nc: NatsConnection, stream: string, since: number): Promise<Order[]> {
  const orders: Order[] = [];
  const storedSince = new Date(Date.now() - lifecycleSpanMs).toISOString();
  await readStream(nc, stream, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: storedSince }, (m) => {
    const order = m.json<Order>();
    if (order.ts >= since) orders.push(order);
  });
  return orders;
}
