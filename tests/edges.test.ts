/**
 * Edges: a keyed step's outputs read by later steps, through an internal stream. Window rows
 * keyed again (the busiest item per window; a window over windows), and an aggregate over the rows of another
 * (revenue per category over per-item totals), which takes a row's previous version back out
 * every time it changes. Across a stop and restart, every result equals a direct computation.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Schema } from "effect";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Sale = Schema.Struct({ item: Schema.String, category: Schema.String, amount: Schema.Number, ts: Schema.Number });
type Sale = typeof Sale.Type;

function sales(count: number, seed: number): Sale[] {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: count }, (_, i) => {
    const item = `item-${Math.floor(rand() * rand() * 40)}`;
    return {
      item,
      category: `cat-${Number(item.slice(5)) % 4}`,
      amount: 1 + Math.floor(rand() * 20),
      // 50 ms apart, up to 400 ms out of order (the bound is 500 ms: nothing is late).
      ts: 1_700_000_000_000 + i * 50 - Math.floor(rand() * 400),
    };
  });
}

async function publish(nc: NatsConnection, stream: string, events: readonly Sale[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] }).catch(() => undefined);
  const js = jetstream(nc);
  await Promise.all(events.map((e) => js.publish(`${stream}.sale`, JSON.stringify(e))));
}

async function caughtUp(worker: Worker): Promise<void> {
  await waitFor(async () => Object.values(await worker.lag()).every((n) => n === 0), {
    timeoutMs: 30_000,
    message: "every source and edge read and committed",
  });
}

const byKey = <R extends { key: unknown }>(rows: R[]) => [...rows].sort((a, b) => String(a.key).localeCompare(String(b.key)));

describe("edges between keyed steps", () => {
  const nats = useNatsServer();

  it("window rows keyed again: the busiest item of every window", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const events = sales(3_000, 7);
    await publish(nc, "sales", events);
    const p = pipeline("busiest", { partitions: 3 });
    p.source("sales", { stream: "sales", schema: Sale, eventTime: (s) => s.ts, maxOutOfOrderMs: 500 })
      .keyBy("by-item", "item")
      .window("per-10s", { size: 10_000 })
      .aggregate("item-counts", (a) => ({ sales: a.count() }))
      .keyBy("by-window", "windowStart")
      .aggregate("busiest", (a) => ({ items: a.count(), top: a.topN(1, "key", "sales"), most: a.max("sales") }))
      .toTable("busiest_items");
    const worker = await Worker.start(nc, p, { checkpointMs: 50 });
    await caughtUp(worker);
    await worker.stop();

    // The windows the final watermark closed, counted directly.
    const watermark = Math.max(...events.map((e) => e.ts)) - 500;
    const counts = new Map<number, Map<string, number>>();
    for (const e of events) {
      const start = Math.floor(e.ts / 10_000) * 10_000;
      if (start + 10_000 > watermark) continue;
      const items = counts.get(start) ?? new Map<string, number>();
      items.set(e.item, (items.get(e.item) ?? 0) + 1);
      counts.set(start, items);
    }
    const expected = [...counts].map(([start, items]) => {
      const ranked = [...items].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
      return { key: start, items: items.size, top: [{ key: ranked[0]![0], weight: ranked[0]![1] }], most: ranked[0]![1] };
    });
    expect(expected.length).toBeGreaterThan(10);
    expect(byKey(await readTable<{ key: number }>(nc, "busiest_items"))).toEqual(byKey(expected));
  });

  it("window rows keyed again feed any keyed step: a window over windows", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const events = sales(3_000, 11);
    await publish(nc, "sales3", events);
    const p = pipeline("windows-of-windows", { partitions: 2 });
    p.source("sales", { stream: "sales3", schema: Sale, eventTime: (s) => s.ts, maxOutOfOrderMs: 500 })
      .keyBy("by-item", "item")
      .window("per-10s", { size: 10_000 })
      .aggregate("item-counts", (a) => ({ sales: a.count() }))
      .keyBy("by-item-again", "key")
      .window("per-30s", { size: 30_000 }) // a keyed stream's step, not only an aggregate
      .aggregate("item-30s", (a) => ({ windows: a.count(), sales: a.sum("sales") }))
      .toTable("item_30s");
    const worker = await Worker.start(nc, p, { checkpointMs: 50 });
    await caughtUp(worker);
    await worker.stop();

    // A 10 s window's row has event time end - 1; the 30 s windows the final watermark closed.
    const watermark = Math.max(...events.map((e) => e.ts)) - 500;
    const tens = new Map<string, number>();
    for (const e of events) {
      const start = Math.floor(e.ts / 10_000) * 10_000;
      if (start + 10_000 <= watermark) tens.set(`${e.item}|${start}`, (tens.get(`${e.item}|${start}`) ?? 0) + 1);
    }
    const thirties = new Map<string, { windows: number; sales: number }>();
    for (const [k, n] of tens) {
      const [item, start] = k.split("|") as [string, string];
      const big = Math.floor((Number(start) + 9_999) / 30_000) * 30_000;
      if (big + 30_000 > watermark) continue;
      const row = thirties.get(`${item}|${big}`) ?? { windows: 0, sales: 0 };
      thirties.set(`${item}|${big}`, { windows: row.windows + 1, sales: row.sales + n });
    }
    const got = await readTable<{ key: string; windowStart: number; windows: number; sales: number }>(nc, "item_30s");
    const simple = got.map((r) => ({ key: `${r.key}|${r.windowStart}`, windows: r.windows, sales: r.sales }));
    expect(thirties.size).toBeGreaterThan(20);
    expect(byKey(simple)).toEqual(byKey([...thirties].map(([key, r]) => ({ key, ...r }))));
  });

  it("an aggregate over another's rows retracts their previous versions, across a restart", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const events = sales(4_000, 11);
    const p = () => {
      const p = pipeline("categories", { partitions: 4 });
      p.source("sales", { stream: "sales2", schema: Sale })
        .keyBy("by-item", "item")
        .aggregate("per-item", (a) => ({ category: a.reduce("", (_, s) => s.category), revenue: a.sum("amount") }))
        .keyBy("by-category", "category")
        .aggregate("per-category", (a) => ({
          items: a.count(),
          revenue: a.sum("revenue"),
          best: a.max("revenue"),
          worst: a.min("revenue"),
          top: a.topN(2, "key", "revenue"),
        }))
        .toTable("category_revenue");
      return p;
    };
    await publish(nc, "sales2", events.slice(0, 2_000));
    const first = await Worker.start(nc, p(), { checkpointMs: 50 });
    await caughtUp(first);
    await first.stop();
    await publish(nc, "sales2", events.slice(2_000));
    const second = await Worker.start(nc, p(), { checkpointMs: 50 });
    await caughtUp(second);
    await second.stop();

    const perItem = new Map<string, { category: string; revenue: number }>();
    for (const e of events) {
      perItem.set(e.item, { category: e.category, revenue: (perItem.get(e.item)?.revenue ?? 0) + e.amount });
    }
    const perCategory = new Map<string, [string, number][]>();
    for (const [item, { category, revenue }] of perItem) {
      perCategory.set(category, [...(perCategory.get(category) ?? []), [item, revenue]]);
    }
    const expected = [...perCategory].map(([category, items]) => {
      const ranked = [...items].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
      return {
        key: category,
        items: items.length,
        revenue: items.reduce((n, [, r]) => n + r, 0),
        best: ranked[0]![1],
        worst: ranked[ranked.length - 1]![1],
        top: ranked.slice(0, 2).map(([key, weight]) => ({ key, weight })),
      };
    });
    expect(byKey(await readTable<{ key: string }>(nc, "category_revenue"))).toEqual(byKey(expected));
    // Every change of a per-item row went over the edge: one message per sale at least.
    const edge = await (await jetstreamManager(nc)).streams.info("eddy-edge-categories-per-item");
    expect(edge.state.messages).toBeGreaterThanOrEqual(events.length);
  });

  it(
    "a writer that replays after the stream's duplicate window sends nothing twice: it reads back what it sent",
    { timeout: 60_000 },
    async () => {
      const nc = await nats.connect();
      const jsm = await jetstreamManager(nc);
      const events = sales(1_000, 5);
      await publish(nc, "sales4", events);
      // The edge stream made beforehand, with a duplicate window of 200 ms instead of 10 minutes.
      const edgeStream = "eddy-edge-replayed-per-item";
      await jsm.streams.add({ name: edgeStream, subjects: ["eddy.edge.replayed.per-item.>"], duplicate_window: 200_000_000 });
      const p = () => {
        const p = pipeline("replayed", { partitions: 2 });
        p.source("sales", { stream: "sales4", schema: Sale })
          .keyBy("by-item", "item")
          .aggregate("per-item", (a) => ({ category: a.reduce("", (_, s) => s.category), revenue: a.sum("amount") }))
          .keyBy("by-category", "category")
          .aggregate("per-category", (a) => ({ items: a.count(), revenue: a.sum("revenue") }))
          .toTable("replayed_categories");
        return p;
      };
      const writing = [0, 1].map((partition) => ({ step: "per-item", partition }));
      const reading = [0, 1].map((partition) => ({ step: "per-category", partition }));
      // The writer never checkpoints after its start: a replay re-sends every output.
      const never = { checkpointMs: 600_000, checkpointEvents: 10_000_000, idleCheckpointMs: Number.POSITIVE_INFINITY };
      const reader = await Worker.start(nc, p(), { checkpointMs: 100, assignments: reading });
      const perCategory = new Map<string, { items: Set<string>; revenue: number }>();
      for (const e of events) {
        const c = perCategory.get(e.category) ?? { items: new Set(), revenue: 0 };
        c.items.add(e.item);
        c.revenue += e.amount;
        perCategory.set(e.category, c);
      }
      const expected = byKey([...perCategory].map(([key, c]) => ({ key, items: c.items.size, revenue: c.revenue })));
      const table = async () =>
        byKey((await readTable<{ key: string; items: number; revenue: number }>(nc, "replayed_categories"))
          .map(({ key, items, revenue }) => ({ key, items, revenue })));
      const edgeReadUp = () => caughtUp(reader);
      try {
        const first = await Worker.start(nc, p(), { ...never, assignments: writing });
        await waitFor(() => (first.messagesRead.sales ?? 0) >= events.length, { timeoutMs: 30_000, message: "written" });
        await first.abandon(writing); // a crash: no final checkpoint
        await first.stop();
        await edgeReadUp();
        expect(await table()).toEqual(expected);

        // Wait until the server forgets message ids (the window passed), then replay everything.
        const js = jetstream(nc);
        await js.publish("eddy.edge.replayed.per-item.probe", "{}", { msgID: "probe" });
        await waitFor(async () => !(await js.publish("eddy.edge.replayed.per-item.probe", "{}", { msgID: "probe" })).duplicate, {
          timeoutMs: 10_000,
          message: "the duplicate window to pass",
        });
        const second = await Worker.start(nc, p(), { checkpointMs: 100, assignments: writing });
        await waitFor(() => (second.messagesRead.sales ?? 0) >= events.length, { timeoutMs: 30_000, message: "replayed" });
        await second.stop();
        await edgeReadUp();
        expect(await table()).toEqual(expected);
      } finally {
        await reader.stop();
      }
    },
  );
});
