/**
 * An actor that fails while the worker changes its assignments: reading stops for the failure
 * only once the change is done, and the readers the change does not touch read on meanwhile. The
 * failed actor recovers its checkpoint after its backoff and must not take the batches that go on
 * arriving from further on (the records between its checkpoint and them were never applied): it
 * waits for the reading again from its position. Every table and the batched sink equal the
 * batch oracle.
 */
import { describe, expect, it } from "vitest";
import { generateOrders, type Order, orderMessages, publishMenu } from "../examples/coffee-shop/orders.ts";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { FencedError } from "../src/core/errors.ts";
import type { Fence } from "../src/core/fence.ts";
import { publishAll } from "../src/log/publisher.ts";
import { ensureStream } from "../src/log/streams.ts";
import { type Assignment, assignmentKey, everyPartition } from "../src/runtime/assignments.ts";
import { compile } from "../src/runtime/plan.ts";
import { Worker } from "../src/runtime/worker.ts";
import { expectExactCoffeeShop } from "./support/coffee-shop-oracle.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { caughtUp, coffeeShopActors } from "./support/worker-process.ts";

describe("an actor failing while the worker's assignments change", () => {
  const nats = useNatsServer();

  it("recovers without skipping what the still-running readers had passed", { timeout: 90_000 }, async () => {
    const nc = await nats.connect();
    const seed = 11;
    const count = 10_000;
    await ensureStream(nc, "orders", ["orders.>"]);
    await publishMenu(nc);
    const publishing = publishAll(nc, orderMessages(generateOrders({ seed, count }), "orders"), { ratePerSec: 2_000 });
    publishing.catch(() => undefined); // awaited below; not unhandled if the test fails before

    // The change: taking on a partition of the late-orders count (it reads the late edge, not the
    // orders), whose recovery waits until the test lets it.
    const joining: Assignment = { step: "store-late", partition: 0 };
    let letJoin!: () => void;
    const joined = new Promise<void>((resolve) => (letJoin = resolve));
    // The failure: the batched sink's next commit is refused once.
    const failing = "large-orders.0.manifest";
    let refuse = false;
    const fence: Fence = {
      check(what) {
        if (refuse && what === failing) {
          refuse = false;
          throw new FencedError({ key: what, message: "refused once by the test" });
        }
      },
      holds: (step, partition) => (step === joining.step && partition === joining.partition ? joined : Promise.resolve()),
    };
    let failures = 0;
    const log = (event: string, fields: Record<string, unknown>) => {
      if (event === "actor-failed" && fields.step === "large-orders") failures++;
    };
    const all = everyPartition(compile(coffeeShop()));
    const worker = await Worker.start(nc, coffeeShop(), {
      checkpointMs: 50,
      tableFlushMs: 50,
      backoffMs: 20,
      maxBatch: 100,
      fence,
      log,
      assignments: all.filter((a) => assignmentKey(a) !== assignmentKey(joining)),
    });
    try {
      const sink = () => worker.status().find((s) => s.step === "large-orders")!;
      await waitFor(() => (sink().committed.orders ?? 0) > 1_000, { timeoutMs: 30_000, message: "the sink past 1000" });
      let assigned = false;
      const assigning = worker.assign([joining]).then(() => void (assigned = true));
      refuse = true;
      await waitFor(() => failures > 0, { timeoutMs: 10_000, message: "the sink failed" });
      // It recovered and runs again while the change still waits...
      await waitFor(() => sink().state === "running" || sink().state === "checkpointing", {
        timeoutMs: 10_000,
        message: "the sink recovered",
      });
      const recoveredAt = sink().positions.orders ?? 0;
      // ... and the orders reader, which the change does not touch, reads on past its checkpoint.
      const read = () => worker.status().find((s) => s.step === "store-revenue")!.positions.orders ?? 0;
      await waitFor(() => read() > recoveredAt + 1_000, { timeoutMs: 30_000, message: "1000 orders read past the sink" });
      expect(assigned, "the change still waits").toBe(false);
      letJoin();
      await assigning;
      expect(await publishing).toBe(count);
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 30_000,
        intervalMs: 50,
        message: "caught up",
      });
    } finally {
      letJoin();
      await worker.stop();
    }
    expect(failures, "the sink failed once, for the refused commit").toBe(1);
    const stored = await readStreamJson<Order>(nc, "orders");
    await expectExactCoffeeShop(nc, seed, count, stored);
  });
});
