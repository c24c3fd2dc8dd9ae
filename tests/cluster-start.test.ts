/**
 * `eddy run` started while its NATS cluster cannot answer JetStream requests (two of three
 * servers down: requests time out, or find a copy's server offline) keeps trying to start, saying so
 * (`start-retrying`), instead of exiting; once the servers are back it starts, processes every
 * order and its tables equal the batch oracle.
 */
import { Kvm } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { ensureStream } from "../src/log/streams.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { waitFor } from "./support/nats.ts";
import { useNatsCluster } from "./support/nats-cluster.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
  type WorkerProcess,
} from "./support/worker-process.ts";

describe("eddy run on a cluster without a quorum", () => {
  const cluster = useNatsCluster();

  it("waits for the cluster to answer, then starts and counts every order once", { timeout: 180_000 }, async () => {
    const nc = await cluster.connect();
    const seed = 23;
    const count = 3_000;
    await ensureStream(nc, "orders", ["orders.>"], 3);
    await new Kvm(nc).create("menu", { history: 1, storage: "file", replicas: 3 });
    await publishOrders(nc, { stream: "orders", seed, count });
    await cluster.kill("n2", "SIGTERM");
    await cluster.kill("n3", "SIGTERM");
    let worker: WorkerProcess | undefined;
    let code: number | string | undefined;
    try {
      worker = startWorkerProcess(cluster.node("n1").url, "examples/coffee-shop/pipeline.ts", "coffeeShop", [
        "--replicas",
        "3",
        "--checkpoint-ms",
        "300",
      ]);
      const w = worker;
      await waitFor(() => w.output().includes('"event":"start-retrying"'), {
        timeoutMs: 60_000,
        message: () => `eddy run retrying its start\n${w.output()}`,
      });
      expect(w.output()).not.toContain('"event":"running"');
      await cluster.restart("n2");
      await cluster.restart("n3");
      // Every order committed (a stream just given a leader again may report fewer for a moment), then every edge.
      await waitFor(async () => (await committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors)) >= count, {
        timeoutMs: 120_000,
        intervalMs: 200,
        message: () => `every order committed once the cluster answered\n${w.output().slice(-4000)}`,
      });
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 120_000,
        intervalMs: 200,
        message: () => `caught up once the cluster answered\n${w.output().slice(-4000)}`,
      });
    } finally {
      worker?.kill("SIGTERM");
      code = await worker?.exited;
    }
    expect(code, worker?.output()).toBe(0);
    await expectExactCoffeeShop(nc, seed, count);
  });
});
