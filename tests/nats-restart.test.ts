/**
 * Chaos on the server side: nats-server is SIGKILLed in the middle of a run and started again
 * on the same port and store. The worker's connection reconnects, actors whose checkpoint failed
 * recover after their backoff, reading rewinds to the lowest committed position, and the
 * tables end exact.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { connectNats } from "../src/log/connection.ts";
import { type NatsServer, startNatsServer } from "../src/platform/nats-server.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { expectedTables, type StoreRow } from "./support/coffee-shop-oracle.ts";
import { waitFor } from "./support/nats.ts";

describe("nats-server killed mid-run", () => {
  const storeDir = mkdtempSync(join(tmpdir(), "eddy-restart-"));
  const servers: NatsServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it("keeps results exact across a SIGKILL and restart of the server", { timeout: 120_000 }, async () => {
    const first = await startNatsServer({ storeDir });
    servers.push(first);
    const seed = 11;
    const count = 40_000;
    const setup = await connectNats({ url: first.url });
    await publishOrders(setup, { stream: "orders", seed, count });
    await setup.close();

    const nc = await connectNats({ url: first.url });
    const log: string[] = [];
    const worker = await Worker.start(nc, coffeeShop(), {
      checkpointMs: 50,
      checkpointEvents: 2_000,
      backoffMs: 100,
      log: (event) => log.push(event),
    });
    await waitFor(() => worker.committedPosition("orders") >= 8_000, { timeoutMs: 30_000, message: "some progress" });
    first.kill("SIGKILL");
    await first.exited;
    const second = await startNatsServer({ storeDir, port: first.port });
    servers.push(second);

    await waitFor(() => worker.committedPosition("orders") >= count, { timeoutMs: 90_000, intervalMs: 100, message: `caught up after the restart (${log.join(",")})` });
    expect(log).toContain("actor-failed");
    await worker.stop();
    const rows = await readTable<StoreRow>(nc, "revenue_by_store");
    expect(new Map(rows.map((r) => [r.key, r]))).toEqual(expectedTables(seed, count).byStore);
    await nc.close();
  });
});
