/**
 * Exactly once over a source far out of order in event time: blocks of orders stored minutes
 * away from their place (the coffee shop allows 2 s), so that many orders are late, while
 * in-process workers are stopped (a final checkpoint) or let their partitions go without one (as
 * a crash does) at seeded moments, and the partitions move between two workers at each restart.
 * Every result table, the window stream and the batched sink equal the batch oracle over the
 * stored order: a restart changes no watermark any record meets, so nothing late is counted and
 * nothing on time is dropped.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { generateOrders, mulberry32, type Order, orderMessages, publishMenu } from "../examples/coffee-shop/orders.ts";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishAll } from "../src/log/publisher.ts";
import { ensureStream } from "../src/log/streams.ts";
import { type Assignment, everyPartition } from "../src/runtime/assignments.ts";
import { compile } from "../src/runtime/plan.ts";
import { Worker } from "../src/runtime/worker.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { windowOracle } from "./support/window-oracle.ts";
import { caughtUp, coffeeShopActors, coffeeShopOrderActors, committedPosition } from "./support/worker-process.ts";

/**
 * The orders in blocks of `block`, each block moved among its `group` neighbours: an order lands
 * up to (group - 1) blocks of event time away from its place.
 */
function shuffledBlocks(orders: readonly Order[], block: number, group: number, random: () => number): Order[] {
  const blocks: Order[][] = [];
  for (let i = 0; i < orders.length; i += block) blocks.push(orders.slice(i, i + block));
  for (let g = 0; g < blocks.length; g += group) {
    const end = Math.min(blocks.length, g + group);
    for (let i = end - 1; i > g; i--) {
      const j = g + Math.floor(random() * (i - g + 1));
      [blocks[i], blocks[j]] = [blocks[j]!, blocks[i]!];
    }
  }
  return blocks.flat();
}

describe("a source far out of order in event time, with restarts and moves", () => {
  const nats = useNatsServer();

  it("gives the batch oracle's tables, late orders and windows", { timeout: 120_000 }, async () => {
    const nc = await nats.connect();
    const seed = 5;
    const count = 12_000;
    const random = mulberry32(99);
    // 300 orders are 30 s of event time; groups of 6 blocks: up to 2.5 minutes out of order.
    const orders = shuffledBlocks([...generateOrders({ seed, count })], 300, 6, random);
    await ensureStream(nc, "orders", ["orders.>"]);
    await publishMenu(nc);
    // Published while the workers come and go, so that they stop in the middle of the stream.
    const publishing = publishAll(nc, orderMessages(orders, "orders"), { ratePerSec: 1_500 });
    publishing.catch(() => undefined); // awaited below; not unhandled if the test fails before

    const all: Assignment[] = everyPartition(compile(coffeeShop()));
    const progress = () => committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors);
    const options = { checkpointMs: 50, checkpointEvents: 500, maxBatch: 200, tableFlushMs: 50 };
    const stops = Array.from({ length: 6 }, () => Math.floor(500 + random() * (count - 1_000))).sort((a, b) => a - b);
    let crashes = 0;
    for (const point of [...stops, count]) {
      // A new split of the partitions between two workers each round.
      const mine = all.map(() => random() < 0.5);
      const a = await Worker.start(nc, coffeeShop(), { ...options, assignments: all.filter((_, i) => mine[i]) });
      const b = await Worker.start(nc, coffeeShop(), { ...options, assignments: all.filter((_, i) => !mine[i]) });
      try {
        if (point < count) {
          await waitFor(async () => (await progress()) >= point, { timeoutMs: 30_000, intervalMs: 5, message: `past ${point}` });
        } else {
          expect(await publishing).toBe(count);
          await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
            timeoutMs: 30_000,
            intervalMs: 50,
            message: "caught up",
          });
        }
      } finally {
        for (const w of [a, b]) {
          // Half the time as a crash: the partitions go without a final checkpoint.
          if (point < count && random() < 0.5) {
            crashes++;
            await w.abandon(w.assignments);
          }
          await w.stop();
        }
      }
    }
    expect(crashes).toBeGreaterThan(0);
    expect(await publishing).toBe(count);
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    expect(last).toBe(count);
    const stored = await readStreamJson<Order>(nc, "orders");
    // Many orders are late for their minute in the stored order: the test is about them.
    const { late } = windowOracle(stored, 60_000, 60_000, 2_000);
    expect(late.length).toBeGreaterThan(count / 10);
    await expectExactCoffeeShop(nc, seed, count, stored);
  });
});
