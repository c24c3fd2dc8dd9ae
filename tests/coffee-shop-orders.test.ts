/**
 * The coffee-shop order generator: deterministic per seed, valid under the Order schema, skewed,
 * disorder bounded; publishOrders stores each order exactly once, even when run twice.
 */
import { Schema } from "effect";
import { beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateOrders, maxDisorderMs, menu, Order, publishOrders } from "../examples/coffee-shop/orders.ts";
import { manualClock } from "../src/core/clock.ts";
import { useNatsServer } from "./support/nats.ts";

describe("generateOrders", () => {
  it("gives the same orders for the same seed and different orders for another", () => {
    const a = [...generateOrders({ seed: 42, count: 2000 })];
    const b = [...generateOrders({ seed: 42, count: 2000 })];
    const c = [...generateOrders({ seed: 43, count: 2000 })];
    expect(a).toEqual(b);
    expect(c.map((o) => [o.item, o.store, o.qty])).not.toEqual(a.map((o) => [o.item, o.store, o.qty]));
    expect(new Set(a.map((o) => o.orderId)).size).toBe(2000);
    expect(a[0]?.orderId).toBe("o-42-1");
  });

  it("produces orders that decode with the Order schema, priced from the menu", () => {
    const decode = Schema.decodeUnknownSync(Order);
    const prices = new Map(menu.map((m) => [m.item, m.price]));
    for (const order of generateOrders({ seed: 1, count: 5000, stores: 3 })) {
      const decoded = decode(JSON.parse(JSON.stringify(order)));
      expect(decoded.unitPrice).toBe(prices.get(decoded.item));
      expect(decoded.qty).toBeGreaterThanOrEqual(1);
      expect(decoded.qty).toBeLessThanOrEqual(4);
      expect(["store-1", "store-2", "store-3"]).toContain(decoded.store);
    }
    expect(() => decode({ orderId: "x", store: "s", item: "latte", qty: 0, unitPrice: 1, ts: 0 })).toThrow();
    expect(() => decode({ orderId: "x", store: "s", item: "latte", qty: 1.5, unitPrice: 1, ts: 0 })).toThrow();
  });

  it("skews popularity: the best seller sells many times the least popular item", () => {
    const counts = new Map<string, number>();
    for (const o of generateOrders({ seed: 9, count: 20_000 })) counts.set(o.item, (counts.get(o.item) ?? 0) + 1);
    const sorted = [...counts.values()].sort((x, y) => y - x);
    expect(counts.size).toBe(menu.length);
    expect(sorted[0]! / sorted[sorted.length - 1]!).toBeGreaterThan(20);
  });

  it("keeps event time moving forward with disorder bounded by maxDisorderMs", () => {
    const start = 1_000_000;
    let highest = -Infinity;
    let outOfOrder = 0;
    const orders = [...generateOrders({ seed: 5, count: 10_000, startTime: start, spacingMs: 50 })];
    for (const o of orders) {
      expect(o.ts).toBeGreaterThanOrEqual(highest - maxDisorderMs);
      if (o.ts < highest) outOfOrder++;
      highest = Math.max(highest, o.ts);
    }
    expect(outOfOrder).toBeGreaterThan(0);
    expect(orders.at(-1)!.ts).toBeGreaterThan(start + 9_999 * 50 - maxDisorderMs - 1);
  });
});

// --- against a real server ---------------------------------------------------------------------

describe("publishOrders", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await nats.connect();
  });

  it("stores 10,000 orders exactly once, even when published twice", async () => {
    const jsm = await jetstreamManager(nc);
    expect(await publishOrders(nc, { stream: "ORDERS", seed: 3, count: 10_000 })).toEqual({ published: 10_000 });
    const info = await jsm.streams.info("ORDERS");
    expect(info.state.messages).toBe(10_000);
    expect(info.config.subjects).toEqual(["orders.>"]);
    expect(info.config.storage).toBe("file");
    expect(info.config.duplicate_window).toBe(600_000_000_000);

    await publishOrders(nc, { stream: "ORDERS", seed: 3, count: 10_000 });
    expect((await jsm.streams.info("ORDERS")).state.messages).toBe(10_000);

    const stored = await jsm.streams.getMessage("ORDERS", { seq: 1 });
    expect(Schema.decodeUnknownSync(Order)(stored?.json())).toEqual(generateOrders({ seed: 3, count: 1 }).next().value);
  }, 60_000);

  it("paces to ratePerSec by the injected clock, in batches", async () => {
    const clock = manualClock(0);
    const progress: Array<[published: number, at: number]> = [];
    const run = publishOrders(nc, {
      stream: "PACED",
      subjectPrefix: "paced",
      seed: 4,
      count: 1000,
      ratePerSec: 200, // batches of 10, 50 ms apart: 5 s of clock time
      clock,
      onProgress: (n) => progress.push([n, clock.now()]),
    });
    let done = false;
    void run.then(() => (done = true));
    while (!done) {
      clock.advance(10);
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await run).toEqual({ published: 1000 });
    expect(progress.length).toBe(100);
    for (const [n, at] of progress) expect(at).toBeGreaterThanOrEqual(((n - 10) / 200) * 1000);
    expect(progress.at(-1)![1]).toBeGreaterThanOrEqual(4950);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info("PACED")).state.messages).toBe(1000);
  }, 60_000);
});
