/**
 * Scale-out with real processes: `eddy run` started several times forms one group per pipeline.
 * Three workers share the coffee shop over 200,000 orders; a fourth joins midway, one is
 * SIGKILLed, one is SIGTERMed; every table, sink and window equals the batch oracle exactly.
 * A worker SIGSTOPped until its leases move, then SIGCONTed, writes nothing that is applied.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { type GroupView, readGroup } from "../src/cluster/group.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
  type WorkerProcess,
} from "./support/worker-process.ts";

/**
 * A worker's flags. The membership timeout is the default (5 s) where workers only come and go:
 * on a loaded 2-core machine (other test files with many processes beside this one) a shorter one
 * makes busy workers suspend and rejoin over and over. The fencing test needs leases to move while
 * a worker is stopped, so it uses 2 s.
 */
const args = (id: string, memberTimeoutMs = 5000) => [
  "--worker-id",
  id,
  "--member-timeout-ms",
  String(memberTimeoutMs),
  "--checkpoint-ms",
  "200",
];

/** The partitions each worker holds a lease for. */
async function owners(nc: NatsConnection): Promise<Map<string, number>> {
  const group = await readGroup(nc, "coffee-shop");
  const count = new Map<string, number>();
  for (const owner of Object.values(group?.owners ?? {})) count.set(owner, (count.get(owner) ?? 0) + 1);
  return count;
}

describe("scale-out", () => {
  const nats = useNatsServer();

  it(
    "three workers, a fourth joining, one SIGKILLed and one SIGTERMed: exact tables over 200,000 orders",
    { timeout: 240_000 },
    async () => {
      const nc = await nats.connect();
      const seed = 7;
      const count = 200_000;
      await publishOrders(nc, { stream: "orders", seed, count: 0 });
      const workers = new Map<string, WorkerProcess>();
      const start = (id: string) => {
        workers.set(id, startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args(id)));
      };
      const output = () => [...workers].map(([id, w]) => `--- ${id}\n${w.output().slice(-3000)}`).join("\n");
      try {
        for (const id of ["w1", "w2", "w3"]) start(id);
        await waitFor(async () => (await owners(nc)).size === 3, {
          timeoutMs: 60_000,
          message: `three workers holding partitions\n${output()}`,
        });
        const publishing = publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 5_000 });
        let lastProgress = 0;
        const progress = async () => (lastProgress = await committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors));
        const past = (n: number) =>
          waitFor(async () => (await progress()) >= n, {
            timeoutMs: 90_000,
            intervalMs: 10,
            message: () => `progress past ${n}: ${lastProgress}\n${output()}`,
          });

        await past(40_000);
        start("w4");
        await waitFor(async () => (await owners(nc)).has("w4"), {
          timeoutMs: 30_000,
          message: `w4 holds partitions\n${output()}`,
        });

        await past(90_000);
        workers.get("w2")!.kill("SIGKILL");
        expect(await workers.get("w2")!.exited, output()).toBe("SIGKILL");
        workers.delete("w2");

        await past(140_000);
        workers.get("w3")!.kill("SIGTERM");
        expect(await workers.get("w3")!.exited, output()).toBe(0);
        workers.delete("w3");

        await publishing;
        await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
          timeoutMs: 90_000,
          message: `caught up\n${output()}`,
        });
        // Only the two left hold leases, and they share the partitions evenly.
        const left = await owners(nc);
        expect([...left.keys()].sort()).toEqual(["w1", "w4"]);
        expect(Math.abs(left.get("w1")! - left.get("w4")!)).toBeLessThanOrEqual(2);
      } finally {
        for (const w of workers.values()) w.kill("SIGTERM");
        for (const w of workers.values()) await w.exited;
      }
      await expectExactCoffeeShop(nc, seed, count);
    },
  );
});

describe("fencing", () => {
  const nats = useNatsServer();

  it("a worker paused past its lease (SIGSTOP, then SIGCONT) writes nothing that is applied", { timeout: 180_000 }, async () => {
    const nc = await nats.connect();
    const seed = 11;
    const count = 60_000;
    await publishOrders(nc, { stream: "orders", seed, count: 0 });
    const a = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args("a", 2000));
    const b = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", [...args("b", 2000), "--port", "0"]);
    const output = () => `--- a\n${a.output().slice(-3000)}\n--- b\n${b.output().slice(-3000)}`;
    try {
      await waitFor(async () => (await owners(nc)).size === 2, {
        timeoutMs: 60_000,
        message: `both hold partitions\n${output()}`,
      });
      // b's query API shows the group as b sees it: both members, every partition owned.
      await waitFor(() => /"event":"running".*"http":"[^"]+"/.test(b.output()), { timeoutMs: 30_000, message: "b's HTTP" });
      const http = /"event":"running".*"http":"([^"]+)"/.exec(b.output())![1];
      await waitFor(async () => {
        const view = (await (await fetch(`${http}/group`)).json()) as GroupView;
        return view.self === "b" && view.members.map((m) => m.id).sort().join() === "a,b" &&
          Object.keys(view.owners).length === coffeeShopActors;
      }, { timeoutMs: 30_000, message: `b's /group shows a and b owning every partition\n${output()}` });
      const publishing = publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 4_000 });
      await waitFor(async () => (await committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors)) >= 15_000, {
        timeoutMs: 60_000,
        message: "progress",
      });
      a.kill("SIGSTOP");
      // b takes every partition once a's membership times out.
      await waitFor(async () => {
        const now = await owners(nc);
        return now.size === 1 && now.has("b");
      }, { timeoutMs: 30_000, message: `b holds every lease\n${output()}` });
      a.kill("SIGCONT");
      // a finds its leases gone, lets its actors go, and rejoins: it gets partitions back.
      await waitFor(() => a.output().includes('"event":"group-suspended"'), {
        timeoutMs: 30_000,
        message: `a suspended\n${output()}`,
      });
      await waitFor(async () => (await owners(nc)).size === 2, { timeoutMs: 30_000, message: `a rejoined\n${output()}` });
      await publishing;
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 90_000,
        message: `caught up\n${output()}`,
      });
    } finally {
      a.kill("SIGCONT");
      a.kill("SIGTERM");
      b.kill("SIGTERM");
      expect(await a.exited, output()).toBe(0);
      expect(await b.exited, output()).toBe(0);
    }
    await expectExactCoffeeShop(nc, seed, count);
  });
});
