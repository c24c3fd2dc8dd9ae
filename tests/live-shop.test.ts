/**
 * The live coffee shop `eddy dev` runs (examples/coffee-shop/live-shop.ts), on a manual clock
 * against a real nats-server: each round places `rate` orders, and each order's lifecycle events
 * reach the order status stream when they fall due on the clock, never before. A shop that stops
 * and opens again (later on the clock) recovers the lifecycles still pending from the orders
 * stream: in the end every order's whole lifecycle is on the stream, each event once.
 */
import { describe, expect, it } from "vitest";
import { openShop } from "../examples/coffee-shop/live-shop.ts";
import { lifecycleOf, lifecycleSpanMs, type Order, type OrderStatus } from "../examples/coffee-shop/orders.ts";
import { manualClock } from "../src/core/clock.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";

const id = (e: OrderStatus) => `${e.orderId}/${e.type}`;

describe("the live coffee shop", () => {
  const nats = useNatsServer();

  it(
    "publishes each lifecycle event when it falls due, and recovers pending ones after a restart",
    { timeout: 60_000 },
    async () => {
      const nc = await nats.connect();
      const clock = manualClock(Date.now());
      const seed = 3;
      let rounds = 0;
      const open = (count: number) =>
        openShop(nc, { rate: 5, count, seed, clock, onRound: () => rounds++, onError: (e) => expect.fail(String(e)) });
      /** Wait for the shop's next round to finish. */
      const round = async () => {
        const target = rounds + 1;
        await waitFor(() => rounds >= target, { timeoutMs: 10_000, message: `round ${target}` });
      };
      const due = (orders: Order[], at: number) => orders.flatMap((o) => lifecycleOf(o, { seed })).filter((e) => e.ts <= at);

      const first = open(15);
      await first.ready;
      for (let i = 0; i < 3; i++) {
        if (i > 0) clock.advance(1000);
        await round();
      }
      await first.stop();
      let orders = await readStreamJson<Order>(nc, "orders");
      let statuses = await readStreamJson<OrderStatus>(nc, "order_status");
      expect(orders.length).toBe(15);
      // Everything due by the last round, nothing later: brewing and serving take a minute or more.
      expect(statuses.map(id).sort()).toEqual(due(orders, clock.now()).map(id).sort());
      expect(statuses.length).toBeGreaterThan(5);
      expect(statuses.every((s) => s.type === "placed")).toBe(true);

      // Closed for 100 s, then open again (5 more orders): what fell due meanwhile comes at once, and
      // once every lifecycle has run its course, each event of each order is on the stream once.
      clock.advance(100_000);
      const second = open(5);
      await second.ready;
      await round();
      clock.advance(lifecycleSpanMs + 1000);
      await round();
      await second.stop();
      orders = await readStreamJson<Order>(nc, "orders");
      statuses = await readStreamJson<OrderStatus>(nc, "order_status");
      expect(orders.length).toBe(20);
      const all = orders.flatMap((o) => lifecycleOf(o, { seed }));
      expect(statuses.map(id).sort()).toEqual(all.map(id).sort());
      expect(statuses.filter((s) => s.type === "served").length).toBeGreaterThan(10);
      // Each order's events are in order on the stream.
      const seen = new Map<string, string[]>();
      for (const s of statuses) seen.set(s.orderId, [...(seen.get(s.orderId) ?? []), s.type]);
      for (const types of seen.values()) expect(["placed", "brewing", "served"].slice(0, types.length)).toEqual(types);
    },
  );
});
