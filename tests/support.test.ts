/**
 * The test support modules (tests/support/) checked on their own, so that the tests built on them
 * rest on something that was seen to work: waitFor's deadline and error, reading a stream back,
 * the window oracle on a hand-worked example, the DuckDB loader, and the committed-position
 * helpers over a real worker's checkpoints.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import type { Order } from "../examples/coffee-shop/orders.ts";
import { generateNexmark } from "../examples/nexmark/generator.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { nexmarkDuckDb } from "./support/nexmark-duckdb.ts";
import { windowOracle } from "./support/window-oracle.ts";
import { caughtUp, committedPosition } from "./support/worker-process.ts";

describe("test support", () => {
  const nats = useNatsServer();

  it("waitFor resolves once the condition holds, and fails at its deadline with the message and last error, even if the condition hangs", async () => {
    let n = 0;
    await waitFor(() => ++n >= 3, { intervalMs: 1 });
    expect(n).toBe(3);
    await expect(waitFor(() => false, { timeoutMs: 30, intervalMs: 5, message: "never" })).rejects.toThrow(
      /waitFor: never not met within 30 ms/,
    );
    await expect(
      waitFor(() => {
        throw new Error("not yet");
      }, { timeoutMs: 30, intervalMs: 5 }),
    ).rejects.toThrow(/last error: not yet/);
    // A condition that never answers fails at the deadline too.
    await expect(waitFor(() => new Promise<boolean>(() => {}), { timeoutMs: 30, message: "a hung read" })).rejects.toThrow(
      /waitFor: a hung read not met within 30 ms \(last error: the condition itself did not answer/,
    );
  });

  it("readStreamJson reads a stream back in order, and an empty one as []", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "support", subjects: ["support.>"] });
    expect(await readStreamJson(nc, "support")).toEqual([]);
    const js = jetstream(nc);
    for (let i = 0; i < 5; i++) await js.publish("support.x", JSON.stringify({ i }));
    expect(await readStreamJson<{ i: number }>(nc, "support")).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
  });

  it("the window oracle fires, holds open and sets aside late orders as worked out by hand", () => {
    const order = (ts: number, qty: number): Order => ({ orderId: `o${ts}`, store: "s", item: "latte", qty, unitPrice: 2, ts });
    // 10 s windows, 1 s bound. The order at 3 s arrives after one at 15 s (watermark 14 s): late.
    const { fired, open, late } = windowOracle(
      [order(1_000, 1), order(9_000, 2), order(15_000, 3), order(3_000, 4), order(25_000, 5)],
      10_000,
      10_000,
      1_000,
    );
    // The final watermark, 24 s, closed the first two windows.
    expect(fired).toEqual([
      { key: "s", windowStart: 0, windowEnd: 10_000, orders: 2, qty: 3, revenue: 6 },
      { key: "s", windowStart: 10_000, windowEnd: 20_000, orders: 1, qty: 3, revenue: 6 },
    ]);
    expect(open.map((w) => w.windowStart)).toEqual([20_000]);
    expect(late).toEqual([4]);
  });

  it("the DuckDB loader holds every generated event, one table per kind", async () => {
    const events = [...generateNexmark({ seed: 2, count: 500 })];
    const db = await nexmarkDuckDb(events);
    try {
      const counts = await db.rows(
        "SELECT (SELECT count(*) FROM person) AS person, (SELECT count(*) FROM auction) AS auction, (SELECT count(*) FROM bid) AS bid",
      );
      const count = (type: string) => events.filter((e) => e.type === type).length;
      expect(counts.map((r) => ({ person: Number(r.person), auction: Number(r.auction), bid: Number(r.bid) }))).toEqual([
        { person: count("person"), auction: count("auction"), bid: count("bid") },
      ]);
    } finally {
      db.close();
    }
  });

  it("committedPosition and caughtUp follow a worker's committed checkpoints", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "ticks", subjects: ["ticks"] });
    const p = pipeline("support", { partitions: 2 });
    p.source("ticks", { stream: "ticks", schema: Schema.Struct({ k: Schema.String }) })
      .keyBy("by-k", "k")
      .aggregate("count", (a) => ({ n: a.count() }))
      .toTable("support_counts");
    expect(await committedPosition(nc, "support", "ticks", 2)).toBe(0);
    const js = jetstream(nc);
    for (let i = 0; i < 20; i++) await js.publish("ticks", JSON.stringify({ k: `k${i % 3}` }));
    const worker = await Worker.start(nc, p, { checkpointMs: 20 });
    try {
      await waitFor(async () => (await committedPosition(nc, "support", "ticks", 2)) === 20, { timeoutMs: 10_000 });
      expect(await caughtUp(nc, "support", { ticks: "ticks" }, 2)).toBe(true);
      // Three actors expected where there are two: not caught up.
      expect(await caughtUp(nc, "support", { ticks: "ticks" }, 3)).toBe(false);
      await js.publish("ticks", JSON.stringify({ k: "k0" }));
      await waitFor(async () => (await committedPosition(nc, "support", "ticks", 2)) === 21, { timeoutMs: 10_000 });
    } finally {
      await worker.stop();
    }
  });
});
