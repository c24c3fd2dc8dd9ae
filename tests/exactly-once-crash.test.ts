/**
 * Exactly-once under crashes: a worker process is SIGKILLed at seeded random points of its
 * progress and restarted, over 100,000 orders; at the end every result-table row equals the value
 * computed independently from the published orders. No event lost, none counted twice.
 */
import { describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { mulberry32, publishOrders } from "../examples/coffee-shop/orders.ts";
import { type Clock, systemClock } from "../src/core/clock.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
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

    await expectExactCoffeeShop(nc, seed, count);
  });
});
