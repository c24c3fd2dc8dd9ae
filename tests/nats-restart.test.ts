/**
 * Failures outside the worker: nats-server SIGKILLed in the middle of a run and started again on
 * the same port and store (the connection reconnects; a checkpoint caught in flight fails and its
 * actor recovers), and a partition's manifest committed by someone else (the actor is fenced:
 * its commit fails, it recovers after its backoff, and reading rewinds to the lowest committed
 * position). Either way the tables end exact.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
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

    await waitFor(() => worker.committedPosition("orders") >= count, {
      timeoutMs: 90_000,
      intervalMs: 100,
      message: `caught up after the restart (${log.join(",")})`,
    });
    await worker.stop();
    // The connection may still be re-establishing its subscriptions: read once it answers.
    let rows: StoreRow[] = [];
    await waitFor(async () => ((rows = await readTable<StoreRow>(nc, "revenue_by_store")), true), {
      timeoutMs: 20_000,
      message: "table readable",
    });
    expect(new Map(rows.map((r) => [r.key, r]))).toEqual(expectedTables(seed, count).byStore);
    await nc.close();
  });

  it("recovers an actor fenced by another commit, rewinds reading, and stays exact", { timeout: 60_000 }, async () => {
    const server = await startNatsServer();
    servers.push(server);
    const seed = 12;
    const count = 30_000;
    const nc = await connectNats({ url: server.url });
    await publishOrders(nc, { stream: "orders", seed, count: count / 2 });
    const log: { event: string; fields: Record<string, unknown> }[] = [];
    const worker = await Worker.start(nc, coffeeShop(), {
      checkpointMs: 50,
      backoffMs: 50,
      log: (event, fields) => log.push({ event, fields }),
    });
    await waitFor(() => worker.committedPosition("orders") >= count / 2, { timeoutMs: 30_000, message: "first half" });
    // Someone else commits partition 1 of store-revenue: same content, new revision.
    const kv = await new Kvm(nc).open("eddy-state-coffee-shop");
    const manifest = (await kv.get("store-revenue.1.manifest"))!;
    await kv.put("store-revenue.1.manifest", manifest.value);
    await publishOrders(nc, { stream: "orders", seed, count });
    await waitFor(() => worker.committedPosition("orders") >= count, { timeoutMs: 30_000, message: "caught up" });
    await worker.stop();
    const failed = log.find((l) => l.event === "actor-failed");
    expect(failed?.fields).toMatchObject({ step: "store-revenue", partition: 1 });
    expect(String(failed?.fields.error)).toMatch(/committed by another owner/);
    expect(log.filter((l) => l.event === "reading").length).toBeGreaterThan(1); // reading rewound
    const rows = await readTable<StoreRow>(nc, "revenue_by_store");
    expect(new Map(rows.map((r) => [r.key, r]))).toEqual(expectedTables(seed, count).byStore);
    await nc.close();
  });
});
