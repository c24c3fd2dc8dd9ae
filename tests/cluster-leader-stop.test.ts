/**
 * On a 3-node NATS cluster (loopback, routes, JetStream, every stream and bucket with three
 * copies, the `orders` source too), two `eddy run` workers share the coffee shop, given every
 * server's URL. During processing the leader of the `orders` stream is SIGKILLed (and later
 * started again), then the leader of the group's bucket (where heartbeats and leases live, and
 * every member's watch of them) is SIGTERMed: publishes are retried across the elections under
 * the same msg ids (each order stored once), and a third worker joining afterwards still gets its
 * share, which needs the members' watches to have survived. Every table equals the batch oracle.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/nats-core";
import { generateOrders, type Order, orderMessages, publishOrders } from "../examples/coffee-shop/orders.ts";
import { readGroup } from "../src/cluster/group.ts";
import { groupBucket } from "../src/core/names.ts";
import { createPublisher } from "../src/log/publisher.ts";
import { ensureStream } from "../src/log/streams.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { balancedOver } from "./support/group-balance.ts";
import { readStreamJson, waitFor } from "./support/nats.ts";
import { useNatsCluster } from "./support/nats-cluster.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
  type WorkerProcess,
} from "./support/worker-process.ts";

const args = (id: string) => [
  "--worker-id",
  id,
  "--replicas",
  "3",
  "--checkpoint-ms",
  "500",
];

const encoder = new TextEncoder();

/**
 * Publish orders through leader elections as a careful producer would: under their order ids as
 * msg ids, a 503 or a missing ack re-published under the same id, at most `inFlight` orders
 * unacknowledged, at `ratePerSec` (pacing, not waiting for a state). An order re-published lands
 * after those published meanwhile; ten in flight are a second of event time, within the 2 s
 * out-of-orderness the source allows, so no order becomes late by it. (With thousands in flight,
 * as publishAll keeps, a retried order lands minutes of event time behind; the windows and late
 * counts then sometimes differed from the batch oracle of the stored order, in about one run in
 * five: extra windows, as if some orders had met a lower watermark than the log gives them. Not
 * explained yet; it is no matter of the cluster's, but of a source that arrives that far out of order.)
 */
async function publishThroughElections(nc: NatsConnection, orders: Iterable<Order>, ratePerSec: number, inFlight = 10) {
  const publisher = createPublisher(nc, { retryNoResponders: true });
  const start = Date.now();
  let published = 0;
  try {
    for (const { subject, value, msgId } of orderMessages(orders, "orders")) {
      publisher.publish(subject, encoder.encode(JSON.stringify(value)), { msgId });
      if (++published % inFlight !== 0) continue;
      await publisher.flush();
      const ahead = start + (published / ratePerSec) * 1000 - Date.now();
      if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead));
    }
  } finally {
    await publisher.close();
  }
  return published;
}

const logCount = (w: WorkerProcess, event: string) => w.output().split(`"event":"${event}"`).length - 1;

describe("on a 3-node NATS cluster", () => {
  const cluster = useNatsCluster();

  it(
    "the stream leaders of the orders and of the group's bucket stopped during processing: exact tables, and the group still rebalances",
    { timeout: 240_000 },
    async () => {
      const nc = await cluster.connect();
      const jsm = await jetstreamManager(nc);
      const seed = 17;
      const count = 40_000;
      await ensureStream(nc, "orders", ["orders.>"], 3);
      await new Kvm(nc).create("menu", { history: 1, storage: "file", replicas: 3 });
      await publishOrders(nc, { stream: "orders", seed, count: 0 }); // the menu
      const workers = new Map<string, WorkerProcess>();
      const start = (id: string) => {
        workers.set(id, startWorkerProcess(cluster.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args(id)));
      };
      const output = () => [...workers].map(([id, w]) => `--- ${id}\n${w.output().slice(-4000)}`).join("\n");
      let progress = 0;
      let codes: (number | string)[] = [];
      const past = (n: number) =>
        waitFor(async () => (progress = await committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors)) >= n, {
          timeoutMs: 90_000,
          intervalMs: 100,
          message: () => `progress past ${n}: ${progress}\n${output()}`,
        });
      try {
        // One after the other: on this small machine, two workers creating a dozen R3 streams and
        // buckets at once can take longer than a JetStream request may.
        start("w1");
        await waitFor(() => workers.get("w1")!.output().includes('"event":"running"'), {
          timeoutMs: 60_000,
          message: () => `w1 running\n${output()}`,
        });
        start("w2");
        await waitFor(() => balancedOver(nc, "coffee-shop", ["w1", "w2"], coffeeShopActors), {
          timeoutMs: 90_000,
          intervalMs: 100,
          message: () => `w1 and w2 share the partitions\n${output()}`,
        });
        // Eddy made its own streams and buckets with three copies.
        for (const stream of ["eddy-edge-coffee-shop-late-orders", `KV_${groupBucket("coffee-shop")}`, "orders"]) {
          expect((await jsm.streams.info(stream)).config.num_replicas, stream).toBe(3);
        }
        const publishing = publishThroughElections(nc, generateOrders({ seed, count }), 2_500);
        publishing.catch(() => undefined); // awaited below; not unhandled if the test fails before

        await past(8_000);
        const ordersLeader = await cluster.leaderOf("orders");
        await cluster.kill(ordersLeader, "SIGKILL");
        await cluster.leaderOf("orders", { not: ordersLeader }); // elected among the two left
        await past(16_000);
        await cluster.restart(ordersLeader);
        await cluster.waitForReplicas("orders");

        const bucket = `KV_${groupBucket("coffee-shop")}`;
        const groupLeader = await cluster.leaderOf(bucket);
        const stoppedAt = Date.now();
        await cluster.kill(groupLeader, "SIGTERM");
        await cluster.leaderOf(bucket, { not: groupLeader });
        // Both workers beat again (the clocks are this machine's)...
        await waitFor(async () => {
          const members = (await readGroup(nc, "coffee-shop"))?.members ?? [];
          return ["w1", "w2"].every((id) => members.some((m) => m.id === id && m.at > stoppedAt + 1_000));
        }, { timeoutMs: 60_000, intervalMs: 200, message: () => `w1 and w2 beat again\n${output()}` });
        await cluster.restart(groupLeader);
        await cluster.waitForReplicas(bucket);
        // ... and the group still works: a third worker joins and gets its share, which takes w1
        // and w2 seeing it through their watches of the bucket and giving partitions back.
        start("w3");
        await waitFor(() => balancedOver(nc, "coffee-shop", ["w1", "w2", "w3"], coffeeShopActors), {
          timeoutMs: 90_000,
          intervalMs: 100,
          message: () => `w1, w2 and w3 share the partitions\n${output()}`,
        });

        expect(await publishing).toBe(count);
        // Every order stored once, although publishes were retried across the elections.
        expect((await jsm.streams.info("orders")).state.messages).toBe(count);
        await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
          timeoutMs: 90_000,
          intervalMs: 200,
          message: () => `caught up\n${output()}`,
        });
      } finally {
        for (const w of workers.values()) w.kill("SIGTERM");
        codes = await Promise.all([...workers.values()].map((w) => w.exited));
      }
      expect(codes, output()).toEqual(codes.map(() => 0));
      // Exact for the orders as the stream holds them: a publish retried across an election may
      // land after later ones, which changes float sums in their last bits and what is late.
      const stored = await readStreamJson<Order>(nc, "orders");
      let highest = 0;
      const overtaken = stored.filter((o) => {
        const n = Number(o.orderId.slice(`o-${seed}-`.length));
        highest = Math.max(highest, n);
        return n < highest;
      }).length;
      const restarts = [...workers.values()].reduce((n, w) => n + logCount(w, "group-watch-restarted"), 0);
      console.log(`cluster test: ${overtaken} orders stored after a later one; group watches restarted ${restarts} times`);
      await expectExactCoffeeShop(nc, seed, count, stored);
    },
  );
});
