/**
 * Graceful stop: SIGTERM mid-stream makes the worker checkpoint every actor at the same position
 * and exit 0; a restart continues from there, and the tables end exact.
 */
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { readCommitted } from "../src/state/checkpoint.ts";
import { readTable } from "../src/state/table.ts";
import { expectedTables, type StoreRow } from "./support/coffee-shop-oracle.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
} from "./support/worker-process.ts";

describe("graceful stop and restart", () => {
  const nats = useNatsServer();

  it("checkpoints on SIGTERM, exits 0, and a restart continues exactly", { timeout: 120_000 }, async () => {
    const nc = await nats.connect();
    const seed = 5;
    const count = 30_000;
    await publishOrders(nc, { stream: "orders", seed, count: 0 });
    const progress = () => committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors);

    const first = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop");
    // Orders start arriving once the worker runs (however slowly it started), and keep arriving
    // while it stops and restarts.
    await waitFor(() => first.output().includes('"event":"running"'), {
      timeoutMs: 60_000,
      message: `running\n${first.output()}`,
    });
    const publishing = publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 2_500 });
    await waitFor(async () => (await progress()) >= 2_000, { timeoutMs: 60_000, message: `progress\n${first.output()}` });
    first.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    // Drained: every actor committed the same, final position.
    const committed = await readCommitted(nc, "coffee-shop");
    expect(committed).toHaveLength(coffeeShopActors);
    const positions = new Set(committed.flatMap((c) => ("orders" in c.manifest.positions ? [c.manifest.positions.orders] : [])));
    expect(positions.size).toBe(1);
    const stoppedAt = [...positions][0]!;
    expect(stoppedAt).toBeGreaterThanOrEqual(2_000);
    expect(stoppedAt).toBeLessThan(count);

    const second = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop");
    await publishing;
    await waitFor(
      async () =>
        (await progress()) >= count && (await caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors)) &&
        second.output().includes('"event":"running"'),
      {
        timeoutMs: 60_000,
        message: `caught up\n${second.output()}`,
      },
    );
    expect(second.output()).toContain(`"fromSeq":${stoppedAt + 1}`);
    second.kill("SIGINT");
    expect(await second.exited).toBe(0);

    const { byStore } = expectedTables(seed, count);
    const rows = await readTable<StoreRow>(nc, "revenue_by_store");
    expect(new Map(rows.map((r) => [r.key, r]))).toEqual(byStore);
  });
});

describe("a stop with NATS down", () => {
  const nats = useNatsServer();

  it("says at once that the final checkpoint cannot be written, waits a bounded time, and exits 1", {
    timeout: 120_000,
  }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 3, count: 2_000 });
    const worker = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop");
    await waitFor(() => worker.output().includes('"event":"running"'), {
      timeoutMs: 60_000,
      message: () => `running\n${worker.output()}`,
    });
    await nc.close();
    await nats.server.stop();
    // The worker notices the server is gone (its connection reports the disconnect).
    await waitFor(() => worker.output().includes('"event":"nats-disconnected"'), {
      timeoutMs: 20_000,
      message: () =>
        `disconnected
${worker.output()}`,
    });
    const signalledAt = Date.now();
    worker.kill("SIGTERM");
    const exit = await worker.exited;
    const tookMs = Date.now() - signalledAt;
    expect(exit, worker.output()).toBe(1);
    expect(worker.output()).toContain('"event":"final-checkpoint-unlikely"');
    expect(worker.output()).toContain("nothing is lost");
    expect(worker.output()).toContain('"event":"stopped-unclean"');
    expect(tookMs, "the stop waits a bounded time").toBeLessThan(15_000);
  });
});
