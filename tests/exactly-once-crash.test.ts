/**
 * Exactly-once under crashes: a worker process is SIGKILLed at seeded random points of its
 * progress and restarted, over 100,000 orders; at the end every result-table row equals the value
 * computed independently from the published orders. No event lost, none counted twice.
 */
import { describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateOrders, menu, mulberry32, publishOrders } from "../examples/coffee-shop/orders.ts";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { evaluate } from "../src/oracle/batch.ts";
import { type Clock, systemClock } from "../src/core/clock.ts";
import { listTables, readTable } from "../src/state/table.ts";
import { type CategoryRow, expectedTables, type ItemRow, type StoreRow } from "./support/coffee-shop-oracle.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { windowOracle } from "./support/window-oracle.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
} from "./support/worker-process.ts";

describe("exactly-once under SIGKILL", () => {
  const nats = useNatsServer();

  it("gives exact tables after 6 kills at random moments over 100,000 events", { timeout: 240_000 }, async () => {
    const nc = await nats.connect();
    const seed = 42;
    const count = 100_000;
    // Orders keep arriving while a worker runs, is killed, and the next one recovers. The
    // publisher's clock stands still from a kill until the next worker runs, so however slowly a
    // worker starts on a busy machine, the kills land in the middle of the stream.
    let pausedAt: number | undefined = Date.now();
    let paused = 0;
    const publishClock: Clock = {
      now: () => (pausedAt ?? Date.now()) - paused,
      setTimeout: (fn, ms) => systemClock.setTimeout(fn, ms),
      clearTimeout: (handle) => systemClock.clearTimeout(handle),
    };
    const resumePublishing = () => {
      if (pausedAt !== undefined) paused += Date.now() - pausedAt;
      pausedAt = undefined;
    };
    await publishOrders(nc, { stream: "orders", seed, count: 0 });
    const publishing = publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 2_500, clock: publishClock });

    const random = mulberry32(1234);
    const killAt = Array.from({ length: 6 }, () => Math.floor(5_000 + random() * 85_000)).sort((a, b) => a - b);
    const progress = () => committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors);
    // Frequent small checkpoints, so kills land before, during and after commits.
    const args = ["--checkpoint-ms", "40", "--checkpoint-events", "3000"];
    const kills: number[] = [];
    for (const point of killAt) {
      const child = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args);
      await waitFor(() => child.output().includes('"event":"running"'), {
        timeoutMs: 60_000,
        message: `running\n${child.output()}`,
      });
      resumePublishing();
      await waitFor(async () => (await progress()) >= point, {
        timeoutMs: 60_000,
        intervalMs: 5,
        message: `progress past ${point}\n${child.output()}`,
      });
      child.kill("SIGKILL");
      pausedAt = Date.now();
      expect(await child.exited).toBe("SIGKILL");
      kills.push(await progress());
    }
    resumePublishing();
    await publishing;
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    expect(last).toBe(count);
    // At least five kills hit a worker in the middle of the stream.
    expect(kills.filter((k) => k < count).length).toBeGreaterThanOrEqual(5);

    const final = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args);
    await waitFor(
      async () =>
        (await caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors)) &&
        final.output().includes('"event":"running"'),
      {
        timeoutMs: 60_000,
        message: `caught up\n${final.output()}`,
      },
    );
    final.kill("SIGTERM");
    expect(await final.exited).toBe(0);

    const { byStore, byItem, byCategory } = expectedTables(seed, count);
    const categories = await readTable<CategoryRow>(nc, "revenue_by_category");
    expect(new Map(categories.map((r) => [r.key, r]))).toEqual(byCategory);
    const stores = await readTable<StoreRow>(nc, "revenue_by_store");
    expect(new Map(stores.map((r) => [r.key, r]))).toEqual(byStore);
    const items = await readTable<ItemRow>(nc, "revenue_by_item");
    expect(new Map(items.map((r) => [r.key, r]))).toEqual(byItem);

    // The stream sink: every large order exactly once, although replays published some again.
    const large = [...generateOrders({ seed, count })].filter((o) => o.qty >= 4).map((o) => o.orderId);
    const sunk = await readStreamJson<{ orderId: string }>(nc, "large_orders");
    expect(sunk.map((o) => o.orderId)).toEqual(large);

    // Windows: every closed store-minute exactly once, equal to the batch definition.
    const { fired } = windowOracle([...generateOrders({ seed, count })], 60_000, 60_000, 2_000);
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
    const batch = evaluate(coffeeShop(), { orders: [...generateOrders({ seed, count })] }, {
      menu: new Map(menu.map((m) => [m.item, { category: m.category, price: m.price }])),
    });
    expect(Object.keys(batch.tables).sort()).toEqual(await listTables(nc));
    for (const [name, rows] of Object.entries(batch.tables)) {
      const streamed = await readTable<{ key: string; windowStart?: number }>(nc, name);
      const order = (a: { key: string; windowStart?: number }, b: { key: string; windowStart?: number }) =>
        a.key.localeCompare(b.key) || (a.windowStart ?? 0) - (b.windowStart ?? 0);
      expect(streamed.sort(order)).toEqual((rows as { key: string; windowStart?: number }[]).sort(order));
    }
  });
});
