/**
 * Record batches (src/log/record-batch.ts, actors/batched-sink.ts): a batched stream sink sends
 * many records to a message; a worker killed after publishing batches it never checkpointed sends
 * none of them again when it restarts and replays their inputs; in a stream of its own, a batch a
 * previous owner sent before it was paused, stored after the new owner's read-back, is not doubled.
 */
import { describe, expect, it } from "vitest";
import { headers } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { generateOrders, publishOrders } from "../examples/coffee-shop/orders.ts";
import { batchMsgId, natsOutputLog, rangeOf, recordCountHeader, recordsOf } from "../src/log/record-batch.ts";
import { createPublisher } from "../src/log/publisher.ts";
import { ensureStream } from "../src/log/streams.ts";
import { BatchedSink } from "../actors/batched-sink.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { compile } from "../src/runtime/plan.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { caughtUp, coffeeShopActors, startWorkerProcess } from "./support/worker-process.ts";

const encoder = new TextEncoder();

describe("record batches", () => {
  it("read as their records; a plain message as its one record", () => {
    const h = headers();
    h.set(recordCountHeader, "2");
    expect(recordsOf(encoder.encode('{"a":1}\n{"a":2}'), h)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(recordsOf(encoder.encode('{"a":1}'))).toEqual([{ a: 1 }]);
    h.set(recordCountHeader, "3");
    expect(() => recordsOf(encoder.encode('{"a":1}\n{"a":2}'), h)).toThrow(/holds 3 records and holds 2/);
  });

  it("name the input range they hold in their Nats-Msg-Id", () => {
    const id = batchMsgId("shop/large/orders", { from: 101, to: 180 });
    expect(rangeOf(id, "shop/large/orders")).toEqual({ from: 101, to: 180 });
    expect(rangeOf(id, "shop/large/other")).toBeUndefined();
    expect(rangeOf("shop/large/orders/7", "shop/large/orders")).toBeUndefined();
  });

  it("are refused for a keyed step's rows, with a hint", () => {
    const p = pipeline("batched-rows", { partitions: 2 });
    p.source("orders", { stream: "orders", schema: Schema.Struct({ store: Schema.String }) })
      .keyBy("by-store", "store")
      .aggregate("count", (a) => ({ n: a.count() }))
      .toStream("counts", { stream: "counts", batched: true });
    expect(() => compile(p)).toThrow(/stream sink "counts" is batched, but reads the outputs of keyed step "count"/);
  });

  describe("across a crash", () => {
    const nats = useNatsServer();

    it("in a stream of their own: a previous owner's batch stored after the read-back is not doubled", async () => {
      const nc = await nats.connect();
      await ensureStream(nc, "solo", ["solo.sink"]);
      const log = natsOutputLog(nc);
      const sink = { id: "sink", stream: "solo", subject: "solo.sink" };
      const send = (s: BatchedSink, from: number, to: number) => {
        s.open(from);
        for (let i = from; i <= to; i++) s.add(i, JSON.stringify({ n: i }));
        s.close(to);
      };
      const paused = createPublisher(nc);
      const old = new BatchedSink(paused, "p/sink/orders", sink);
      await old.recover(log, undefined);
      send(old, 1, 10);
      await paused.flush();

      // The new owner recovers from a checkpoint before input 1, reading back from sequence 1.
      const publisher = createPublisher(nc);
      const owner = new BatchedSink(publisher, "p/sink/orders", sink);
      await owner.recover(log, 1);
      // The old owner's socket buffer, sent as it resumes: inputs 11-20, after the read-back.
      send(old, 11, 20);
      await paused.flush();
      // The owner replays 11-25 cut into another range: refused, and the actor must recover.
      send(owner, 11, 25);
      await expect(publisher.flush()).rejects.toThrow(/wrong last sequence/);
      expect(() => owner.cut()()).toThrow(/wrong last sequence/);
      await owner.recover(log, 1);
      send(owner, 11, 25);
      await publisher.flush();
      const records = (await readStreamJson<{ n: number }>(nc, "solo")).map((r) => r.n);
      expect(records).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    });

    it("are not sent again for inputs replayed after a SIGKILL", { timeout: 120_000 }, async () => {
      const nc = await nats.connect();
      const seed = 9;
      const count = 20_000;
      const large = [...generateOrders({ seed, count })].filter((o) => o.qty >= 4).map((o) => o.orderId);
      await publishOrders(nc, { stream: "orders", seed, count });
      const jsm = await jetstreamManager(nc);
      const largeOrders = async () => (await readStreamJson<{ orderId: string }>(nc, "large_orders")).map((o) => o.orderId);

      // No checkpoint before the kill: every batch the first worker sent covers inputs a restart replays.
      const never = ["--checkpoint-ms", "3600000", "--checkpoint-events", "100000000"];
      const first = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", never);
      await waitFor(async () => (await largeOrders()).length === large.length, {
        timeoutMs: 60_000,
        intervalMs: 100,
        message: `every large order sent\n${first.output()}`,
      });
      first.kill("SIGKILL");
      expect(await first.exited).toBe("SIGKILL");
      const sent = (await jsm.streams.info("large_orders")).state.messages;
      expect(sent, "records went in batches, many to a message").toBeLessThan(large.length / 5);

      const second = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", ["--checkpoint-ms", "40"]);
      await waitFor(
        async () =>
          (await caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors)) &&
          second.output().includes('"event":"running"'),
        { timeoutMs: 60_000, message: `caught up\n${second.output()}` },
      );
      second.kill("SIGTERM");
      expect(await second.exited).toBe(0);
      expect((await jsm.streams.info("large_orders")).state.messages, "no batch sent again").toBe(sent);
      expect(await largeOrders()).toEqual(large);
    });
  });
});
