import { describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { generateOrders, Order, publishOrders } from "../examples/coffee-shop/orders.ts";
import { Kvm } from "@nats-io/kv";
import { Schema } from "effect";
import { createPublisher } from "../src/log/publisher.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readCommitted } from "../src/state/checkpoint.ts";
import { readRow, readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

/** Revenue per store computed independently of Eddy, from the published orders. */
function expectedByStore(seed: number, count: number) {
  const out = new Map<string, { orders: number; revenue: number; items: number }>();
  for (const o of generateOrders({ seed, count })) {
    const row = out.get(o.store) ?? { orders: 0, revenue: 0, items: 0 };
    row.orders++;
    row.revenue += Math.round(o.qty * o.unitPrice * 100) / 100;
    row.items += o.qty;
    out.set(o.store, row);
  }
  return out;
}

describe("keyed aggregation into result tables", () => {
  const nats = useNatsServer();

  it("splits a chunk too large in bytes for one message, and commits without failing", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const Note = Schema.Struct({ k: Schema.String, text: Schema.String });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "notes", subjects: ["notes"] });
    // 400 keys of 5 KB each: 2 MB in a chunk that holds far fewer keys than its key limit.
    const publisher = createPublisher(nc);
    const encoder = new TextEncoder();
    for (let i = 0; i < 400; i++) {
      publisher.publish("notes", encoder.encode(JSON.stringify({ k: `note-${i}`, text: String(i % 10).repeat(5_000) })));
    }
    await publisher.close();
    const p = pipeline("notes", { partitions: 1 });
    p.source("notes", { stream: "notes", schema: Note })
      .keyBy("by-k", "k")
      .aggregate("latest", (a) => ({ text: a.reduce("", (_, n) => n.text) }))
      .toTable("notes_latest");
    const worker = await Worker.start(nc, p, { checkpointMs: 50 });
    await waitFor(() => worker.committedPosition("notes") >= 400, { timeoutMs: 30_000, message: "committed" });
    const failed = worker.status().filter((a) => a.error !== undefined);
    await worker.stop();
    expect(failed).toEqual([]);
    const [committed] = await readCommitted(nc, "notes");
    expect(committed!.manifest.chunkBits).toBeGreaterThanOrEqual(1);
    const rows = await readTable<{ key: string; text: string }>(nc, "notes_latest");
    expect(rows.length).toBe(400);
    expect(rows.every((r) => r.text.length === 5_000 && r.text[0] === r.key.slice(5).slice(-1))).toBe(true);
  });

  it("checkpoints once its input pauses, long before the interval", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const Reading = Schema.Struct({ k: Schema.String, v: Schema.Number });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "readings", subjects: ["readings"] });
    const p = pipeline("readings", { partitions: 2 });
    p.source("readings", { stream: "readings", schema: Reading })
      .keyBy("by-k", "k")
      .aggregate("sums", (a) => ({ total: a.sum("v") }))
      .toTable("readings_sums");
    // An interval of an hour and no count: only a pause can commit within the test.
    const worker = await Worker.start(nc, p, { checkpointMs: 3_600_000, checkpointEvents: 1e9, idleCheckpointMs: 100 });
    const publisher = createPublisher(nc);
    const encoder = new TextEncoder();
    for (let i = 0; i < 50; i++) publisher.publish("readings", encoder.encode(JSON.stringify({ k: `k-${i % 7}`, v: i })));
    await publisher.close();
    await waitFor(() => worker.committedPosition("readings") >= 50, { timeoutMs: 20_000, message: "committed after the pause" });
    await worker.stop();
    const [committed] = await readCommitted(nc, "readings");
    expect(committed!.manifest.positions.readings).toBe(50);
  });

  it("computes revenue per store and per item exactly", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const count = 20_000;
    await publishOrders(nc, { stream: "orders", seed: 7, count });
    const worker = await Worker.start(nc, coffeeShop(), { checkpointMs: 100 });
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "pipeline caught up" });
    await worker.stop();

    const rows = await readTable<{ key: string; orders: number; revenue: number; items: number }>(nc, "revenue_by_store");
    const expected = expectedByStore(7, count);
    expect(rows.length).toBe(expected.size);
    for (const row of rows) {
      const want = expected.get(row.key)!;
      expect(row.orders).toBe(want.orders);
      expect(row.items).toBe(want.items);
      expect(row.revenue).toBeCloseTo(want.revenue, 6);
    }
    const items = await readTable<{ key: string; orders: number }>(nc, "revenue_by_item");
    expect(items.reduce((n, r) => n + r.orders, 0)).toBe(count);
  });

  it("reads only the subjects its source's filter names", async () => {
    const nc = await nats.connect();
    const p = pipeline("store-2-only", { partitions: 2 });
    p.source("orders", { stream: "orders", subject: "orders.store-2", schema: Order })
      .keyBy("by-item", "item")
      .aggregate("n", (a) => ({ n: a.count() }))
      .toTable("store_2_items");
    const worker = await Worker.start(nc, p, { checkpointMs: 50 });
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "caught up" });
    await worker.stop();
    const rows = await readTable<{ n: number }>(nc, "store_2_items");
    const want = [...generateOrders({ seed: 7, count: 20_000 })].filter((o) => o.store === "store-2").length;
    expect(rows.reduce((n, r) => n + r.n, 0)).toBe(want);
  });
});

describe("result tables in pages", () => {
  const nats = useNatsServer();

  it("keeps rows readable by key and in full while pages split as keys grow", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "clicks", subjects: ["clicks"] });
    const publisher = createPublisher(nc);
    const encoder = new TextEncoder();
    const count = 60_000;
    const expected = new Map<string, { n: number; total: number }>();
    for (let i = 0; i < count; i++) {
      const user = `user ${(i * 7919) % 25_000}/é`; // keys that are not KV-safe
      publisher.publish("clicks", encoder.encode(JSON.stringify({ user, ms: i % 97 })));
      const row = expected.get(user) ?? { n: 0, total: 0 };
      row.n++;
      row.total += i % 97;
      expected.set(user, row);
      if (i % 5000 === 0) await publisher.whenPendingBelow(5000);
    }
    await publisher.flush();

    const p = pipeline("clicks", { partitions: 2 });
    p.source("clicks", { stream: "clicks", schema: Schema.Struct({ user: Schema.String, ms: Schema.Number }) })
      .keyBy("by-user", "user")
      .aggregate("per-user", (a) => ({ n: a.count(), total: a.sum("ms") }))
      .toTable("clicks_per_user");
    const worker = await Worker.start(nc, p, { checkpointMs: 50, maxBatch: 500 });
    await waitFor(() => worker.committedPosition("clicks") >= count, { timeoutMs: 40_000, message: "caught up" });
    await worker.stop();

    const rows = await readTable<{ key: string; n: number; total: number }>(nc, "clicks_per_user");
    expect(rows).toHaveLength(25_000);
    expect(new Map(rows.map((r) => [r.key, { n: r.n, total: r.total }]))).toEqual(expected);
    expect(await readRow(nc, "clicks_per_user", "user 42/é")).toEqual({ key: "user 42/é", ...expected.get("user 42/é") });
    expect(await readRow(nc, "clicks_per_user", "nobody")).toBeUndefined();

    // Pages of replaced layouts were purged: exactly 2^chunkBits pages per partition remain.
    const committed = await readCommitted(nc, "clicks");
    expect(committed.every((c) => c.manifest.chunkBits >= 2)).toBe(true);
    const kv = await new Kvm(nc).open("eddy-table-clicks_per_user");
    const pages: string[] = [];
    for await (const key of await kv.keys("p.>")) pages.push(key);
    expect(pages.length).toBe(committed.reduce((n, c) => n + 2 ** c.manifest.chunkBits, 0));
  });
});
