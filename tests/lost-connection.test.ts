/**
 * A worker that loses its connection to NATS stops processing its partitions before its lease
 * can expire, and rejoins when it reconnects. Two `eddy run` workers share the coffee shop; one
 * reaches NATS through a TCP proxy, which goes silent (a partition: the connection stays open and
 * carries nothing, new ones are refused) for longer than the membership timeout. The cut-off
 * worker lets its partitions go within half the timeout of its last acknowledged heartbeat,
 * before the other takes them; once the link is back, its client notices the dead connection by
 * its pings, reconnects, and the worker gets its share back. Every table equals the batch oracle.
 */
import { describe, expect, it } from "vitest";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { balancedOver, leaseHolders } from "./support/group-balance.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import {
  caughtUp,
  coffeeShopActors,
  coffeeShopOrderActors,
  committedPosition,
  startWorkerProcess,
  type WorkerProcess,
} from "./support/worker-process.ts";

const memberTimeoutMs = 2000;
const args = (id: string) => ["--worker-id", id, "--member-timeout-ms", String(memberTimeoutMs), "--checkpoint-ms", "200"];

interface LogLine {
  time: string;
  event: string;
  [field: string]: unknown;
}

/** The worker's JSON log records named `event`. */
function logged(worker: WorkerProcess, event: string): LogLine[] {
  return worker.output().split("\n").filter((line) => line.includes(`"event":"${event}"`)).map((line) =>
    JSON.parse(line.slice(line.indexOf("{"))) as LogLine
  );
}

describe("a worker cut off from NATS", () => {
  const nats = useNatsServer();

  it(
    "stops processing before its lease can expire, the other takes over, and it rejoins when the link is back: exact tables",
    { timeout: 180_000 },
    async () => {
      const nc = await nats.connect();
      const seed = 13;
      const count = 40_000;
      await publishOrders(nc, { stream: "orders", seed, count: 0 });
      const proxy: TcpProxy = await startTcpProxy({ port: nats.server.port });
      const a = startWorkerProcess(proxy.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args("a"));
      const b = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", args("b"));
      const output = () => `--- a\n${a.output().slice(-4000)}\n--- b\n${b.output().slice(-4000)}`;
      let codes: (number | string)[] = [];
      const balanced = () => balancedOver(nc, "coffee-shop", ["a", "b"], coffeeShopActors);
      try {
        await waitFor(balanced, { timeoutMs: 60_000, message: () => `a and b share the partitions\n${output()}` });
        const publishing = publishOrders(nc, { stream: "orders", seed, count, ratePerSec: 3_000 });
        await waitFor(async () => (await committedPosition(nc, "coffee-shop", "orders", coffeeShopOrderActors)) >= 8_000, {
          timeoutMs: 60_000,
          message: () => `progress\n${output()}`,
        });

        const before = (await leaseHolders(nc, "coffee-shop")).get("a")!;
        const cutAt = Date.now();
        proxy.cut("silent");

        // b takes every partition once a's membership times out (by b's clock).
        await waitFor(async () => {
          const held = await leaseHolders(nc, "coffee-shop");
          return held.size === 1 && held.has("b");
        }, { timeoutMs: 30_000, message: () => `b holds every lease\n${output()}` });
        // a let its partitions go on its own, by its own clock, before b could take them.
        await waitFor(() => logged(a, "group-suspended").length > 0, {
          timeoutMs: 10_000,
          message: () => `a suspended\n${output()}`,
        });
        const suspended = logged(a, "group-suspended")[0]!;
        expect(suspended.reason, output()).toBe("heartbeat late");
        expect(suspended.sinceHeartbeatMs as number).toBeLessThan(memberTimeoutMs);
        expect((suspended.partitions as string[]).sort()).toEqual(before);
        const suspendedAt = Date.parse(suspended.time);
        expect(suspendedAt).toBeGreaterThanOrEqual(cutAt - 50); // log times are whole ms
        expect(suspendedAt - cutAt, "suspended within half the timeout of the cut (one beat of slack)").toBeLessThan(
          memberTimeoutMs / 2 + memberTimeoutMs / 5 + 500,
        );
        const takenAt = logged(b, "partitions-taken").filter((t) => Date.parse(t.time) >= cutAt)
          .filter((t) => (t.partitions as string[]).some((p) => before.includes(p)))
          .map((t) => Date.parse(t.time));
        expect(takenAt.length, output()).toBeGreaterThan(0);
        expect(suspendedAt, "a stopped before b took a's partitions").toBeLessThan(Math.min(...takenAt));
        expect(Math.min(...takenAt) - cutAt, "b waited for the membership timeout").toBeGreaterThanOrEqual(memberTimeoutMs - 500);

        // The link is back: a's client finds its connection dead, connects anew, and a rejoins.
        const refusedWhileCut = proxy.refused;
        proxy.restore();
        await waitFor(() => logged(a, "group-resumed").length > 0, {
          timeoutMs: 30_000,
          message: () => `a resumed (refused while cut: ${refusedWhileCut})\n${output()}`,
        });
        await waitFor(balanced, { timeoutMs: 30_000, message: () => `a and b share the partitions again\n${output()}` });
        expect(logged(a, "nats-reconnected").length, output()).toBeGreaterThan(0);

        await publishing;
        await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
          timeoutMs: 90_000,
          message: () => `caught up\n${output()}`,
        });
        expect(await balanced(), "still balanced once caught up").toBe(true);
      } finally {
        a.kill("SIGTERM");
        b.kill("SIGTERM");
        codes = [await a.exited, await b.exited];
        await proxy.close();
      }
      expect(codes, output()).toEqual([0, 0]);
      await expectExactCoffeeShop(nc, seed, count);
    },
  );
});
