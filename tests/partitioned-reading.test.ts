/**
 * Partitioned reading: a worker reads only what its partitions need. A source partitioned by
 * subject (`partitionSubject`) is read per partition, and the edge between two keyed steps has a
 * subject per reading partition, written by the upstream step after it ran the reading chain.
 * Two workers splitting the partitions each read their share of both, exactly once between them,
 * and the result equals a direct computation; an event on the wrong partition's subject is a
 * dead letter that says so, and `eddy status` measures each partition's lag on its own subject. nats-server's own `partition()` subject mapping partitions a stream
 * the same way (the same hash): a producer need not know the partitions. A source that is not
 * partitioned can be repartitioned: one worker reads it and writes an edge per partition, and
 * the results (late events and windows included) equal reading it directly. Windows over a source
 * partitioned by subject close by their partition's watermark, as the batch oracle given the
 * events' subjects computes them.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { describe, expect, it } from "vitest";
import { partitionOfKey } from "../src/core/partition.ts";
import { readDeadLetters } from "../src/log/side-outputs.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { evaluate } from "../src/oracle/batch.ts";
import { readTable } from "../src/state/table.ts";
import { eddy } from "./support/eddy-command.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Sale = Schema.Struct({ item: Schema.String, category: Schema.String, amount: Schema.Number });
type Sale = typeof Sale.Type;

const partitions = 4;

function sales(count: number): Sale[] {
  return Array.from({ length: count }, (_, i) => {
    const n = (i * 7919) % 60;
    return { item: `item-${n}`, category: `cat-${n % 5}`, amount: 1 + (i % 13) };
  });
}

const categories = () => {
  const p = pipeline("partitioned", { partitions });
  p.source("sales", { stream: "psales", partitionSubject: "psales.{partition}", schema: Sale })
    .keyBy("by-item", "item")
    .aggregate("per-item", (a) => ({ category: a.reduce("", (_, s) => s.category), revenue: a.sum("amount") }))
    .keyBy("by-category", "category")
    .aggregate("per-category", (a) => ({ items: a.count(), revenue: a.sum("revenue") }))
    .toTable("partitioned_categories");
  return p;
};

/** Both steps' partitions in `qs`. */
const both = (qs: number[]) => qs.flatMap((partition) => ["per-item", "per-category"].map((step) => ({ step, partition })));

describe("partitioned reading", () => {
  const nats = useNatsServer();

  it("two workers read only their partitions' share of a partitioned source and of an edge", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "psales", subjects: ["psales.*"] });
    const js = jetstream(nc);
    const events = sales(3_000);
    const options = { checkpointMs: 100, tableFlushMs: 50 };
    // The readers `a` starts, in order.
    const started: string[] = [];
    const log = (event: string, fields: Record<string, unknown>) =>
      void (event === "reading" && started.push(String(fields.source)));
    const a = await Worker.start(nc, categories(), { ...options, log, assignments: both([0, 1]) });
    const b = await Worker.start(nc, categories(), { ...options, assignments: both([2, 3]) });
    try {
      for (const e of events) await js.publish(`psales.${partitionOfKey(e.item, partitions)}`, JSON.stringify(e));
      // One event on the subject of a partition its key is not in.
      const wrong = (partitionOfKey("item-1", partitions) + 1) % partitions;
      await js.publish(`psales.${wrong}`, JSON.stringify({ item: "item-1", category: "cat-1", amount: 1000 }));

      const perCategory = new Map<string, { items: Set<string>; revenue: number }>();
      for (const e of events) {
        const c = perCategory.get(e.category) ?? { items: new Set(), revenue: 0 };
        c.items.add(e.item);
        c.revenue += e.amount;
        perCategory.set(e.category, c);
      }
      const expected = [...perCategory].map(([key, c]) => ({ key, items: c.items.size, revenue: c.revenue }))
        .sort((x, y) => (x.key < y.key ? -1 : 1));
      const table = async () =>
        (await readTable<{ key: string; items: number; revenue: number }>(nc, "partitioned_categories"))
          .map(({ key, items, revenue }) => ({ key, items, revenue }))
          .sort((x, y) => (x.key < y.key ? -1 : 1));
      let seen: unknown;
      await waitFor(async () => JSON.stringify(seen = await table()) === JSON.stringify(expected), {
        timeoutMs: 30_000,
        message: () => `revenue per category\n${JSON.stringify(seen)}\n${JSON.stringify(expected)}`,
      });

      // Every source event was read by exactly one worker, each its partitions' share.
      const share = (qs: number[]) => events.filter((e) => qs.includes(partitionOfKey(e.item, partitions))).length;
      expect(a.messagesRead.sales).toBe(share([0, 1]) + (wrong < 2 ? 1 : 0));
      expect(b.messagesRead.sales).toBe(share([2, 3]) + (wrong >= 2 ? 1 : 0));
      // The edge's messages too: between them, each message once; neither read them all.
      const edge = (await jsm.streams.info("eddy-edge-partitioned-per-item")).state.messages;
      await waitFor(() => (a.messagesRead["per-item"] ?? 0) + (b.messagesRead["per-item"] ?? 0) === edge, {
        timeoutMs: 10_000,
        message: () => `edge messages read: ${a.messagesRead["per-item"]} + ${b.messagesRead["per-item"]} of ${edge}`,
      });
      expect(a.messagesRead["per-item"]).toBeLessThan(edge);
      expect(b.messagesRead["per-item"]).toBeLessThan(edge);

      let dead: Awaited<ReturnType<typeof readDeadLetters>> = [];
      await waitFor(async () => (dead = await readDeadLetters(nc, "partitioned")).length > 0, {
        timeoutMs: 10_000,
        message: "the misrouted event's dead letter",
      });
      expect(dead).toHaveLength(1);
      expect(dead[0]!.reason).toMatch(new RegExp(`came on the subject of partition ${wrong}`));

      // Partition 1 moves from a to b: only its readers stop and start; a's partition 0 reads on.
      expect(started.sort()).toEqual(["per-item.0", "per-item.1", "sales.0", "sales.1"]);
      started.length = 0;
      await a.release(both([1]));
      await b.assign(both([1]));
      expect(started).toEqual([]);
      expect(a.assignments.map((x) => x.partition)).toEqual([0, 0]);
      const more = sales(3_300).slice(3_000);
      for (const e of more) await js.publish(`psales.${partitionOfKey(e.item, partitions)}`, JSON.stringify(e));
      for (const e of more) {
        const c = perCategory.get(e.category)!;
        c.items.add(e.item);
        c.revenue += e.amount;
      }
      const after = [...perCategory].map(([key, c]) => ({ key, items: c.items.size, revenue: c.revenue }))
        .sort((x, y) => (x.key < y.key ? -1 : 1));
      await waitFor(async () => JSON.stringify(seen = await table()) === JSON.stringify(after), {
        timeoutMs: 30_000,
        message: () => `revenue per category after the move\n${JSON.stringify(seen)}\n${JSON.stringify(after)}`,
      });

      // eddy status measures each partition's lag on its own subject: all caught up, none unknown.
      let lines: { step: string; partition: number; lag?: number }[] = [];
      await waitFor(async () => {
        const run = eddy(["status", "partitioned", "--json", "--nats", nats.url]);
        if ((await run.exited) !== 0) throw new Error(run.err());
        lines = run.out().trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.step === "per-item");
        return lines.length === partitions && lines.every((l) => l.lag === 0);
      }, { timeoutMs: 20_000, message: () => `per-item partitions caught up by eddy status: ${JSON.stringify(lines)}` });
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("an unkeyed step behind a source partitioned by subject", () => {
  const nats = useNatsServer();

  it("gets every partition's events once, beside the keyed steps' partition readers", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "usales", subjects: ["usales.*"] });
    const js = jetstream(nc);
    const shop = () => {
      const p = pipeline("unkeyed", { partitions });
      const source = p.source("sales", { stream: "usales", partitionSubject: "usales.{partition}", schema: Sale });
      source.keyBy("by-item", "item").aggregate("per-item", (a) => ({ n: a.count() })).toTable("unkeyed_items");
      source.filter("big", (s) => s.amount > 6).toStream("big-sales", { stream: "usales_big" });
      return p;
    };
    const events = sales(4_000);
    const options = { checkpointMs: 50, tableFlushMs: 50, maxBatch: 16 };
    // The stream sink's one partition with b, beside two of the aggregate's partitions.
    const a = await Worker.start(nc, shop(), {
      ...options,
      assignments: [0, 1].map((partition) => ({ step: "per-item", partition })),
    });
    const b = await Worker.start(nc, shop(), {
      ...options,
      assignments: [...[2, 3].map((partition) => ({ step: "per-item", partition })), { step: "big-sales", partition: 0 }],
    });
    try {
      for (const e of events) await js.publish(`usales.${partitionOfKey(e.item, partitions)}`, JSON.stringify(e));
      const big = events.filter((e) => e.amount > 6).length;
      await waitFor(async () => (await jsm.streams.info("usales_big")).state.messages >= big, {
        timeoutMs: 30_000,
        message: `all ${big} big sales in the sink`,
      });
      await waitFor(async () => Object.values(await b.lag()).every((n) => n === 0), {
        timeoutMs: 20_000,
        message: "b caught up",
      });
      expect((await jsm.streams.info("usales_big")).state.messages).toBe(big);
      const counts = new Map<string, number>();
      for (const e of events) counts.set(e.item, (counts.get(e.item) ?? 0) + 1);
      await waitFor(async () => {
        const rows = await readTable<{ key: string; n: number }>(nc, "unkeyed_items");
        return rows.length === counts.size && rows.every((r) => counts.get(r.key) === r.n);
      }, { timeoutMs: 20_000, message: "every item counted once" });
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("windows over a source partitioned by subject", () => {
  const nats = useNatsServer();

  it("close by their partition's watermark, equal to the batch oracle given the subjects", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "pwin", subjects: ["pwin.*"] });
    const js = jetstream(nc);
    const Timed = Schema.Struct({ item: Schema.String, t: Schema.Number });
    const windowed = () => {
      const p = pipeline("pwin", { partitions });
      p.source("sales", {
        stream: "pwin",
        partitionSubject: "pwin.{partition}",
        schema: Timed,
        eventTime: (e) => e.t,
        maxOutOfOrderMs: 1_000,
      })
        .keyBy("by-item", "item")
        .window("ten-seconds", { size: 10_000 })
        .aggregate("per-window", (a) => ({ n: a.count() }))
        .toTable("pwin_counts");
      return p;
    };
    // Two items in different partitions: one's event time runs ahead twice as fast as the other's,
    // and every 20th of the slow one's is 5 s behind it (late in its own partition too).
    const items = Array.from({ length: 20 }, (_, i) => `item-${i}`);
    const fast = items[0]!;
    const slow = items.find((i) => partitionOfKey(i, partitions) !== partitionOfKey(fast, partitions))!;
    const events: { item: string; t: number }[] = [];
    for (let k = 0; k < 200; k++) {
      events.push({ item: fast, t: k * 500 });
      events.push({ item: slow, t: k * 250 - (k % 20 === 19 ? 5_000 : 0) });
    }
    const subjects = events.map((e) => `pwin.${partitionOfKey(e.item, partitions)}`);
    const perPartition = evaluate(windowed(), { sales: events }, {}, { subjects: { sales: subjects } });
    const whole = evaluate(windowed(), { sales: events });
    const byWindow = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      String(a.key).localeCompare(String(b.key)) || Number(a.windowStart) - Number(b.windowStart);
    const expected = perPartition.tables.pwin_counts!.sort(byWindow);
    // The oracle's two readings differ here: the fast partition's watermark would make most of
    // the slow one's events late.
    expect(perPartition.late.length).toBe(5); // k = 19, 59, 99, 139, 179: their window ended at the watermark
    expect(whole.late.length).toBeGreaterThan(100);
    expect(expected.filter((r) => r.key === slow).length).toBe(4);

    const worker = await Worker.start(nc, windowed(), { checkpointMs: 50, tableFlushMs: 50 });
    try {
      for (const [i, e] of events.entries()) await js.publish(subjects[i]!, JSON.stringify(e));
      let rows: Record<string, unknown>[] = [];
      await waitFor(async () => {
        rows = (await readTable<Record<string, unknown>>(nc, "pwin_counts")).sort(byWindow);
        return rows.length === expected.length;
      }, { timeoutMs: 20_000, message: () => `${expected.length} windows closed, ${rows.length} seen` });
      expect(rows).toEqual(expected);
    } finally {
      await worker.stop();
    }
  });
});

// A server that partitions `mapped.<item>` into `mapped.<partition>.<item>` itself.
const config = join(mkdtempSync(join(tmpdir(), "eddy-mapping-")), "nats.conf");
writeFileSync(config, `mappings = { "mapped.*": "mapped.{{partition(${partitions},1)}}.{{wildcard(1)}}" }\n`);

describe("partitioned by nats-server's partition() mapping", () => {
  const nats = useNatsServer({ extraArgs: ["-c", config] });

  it("puts every event in the partition Eddy computes for its key", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "mapped", subjects: ["mapped.*.*"] });
    const js = jetstream(nc);
    const events = sales(600);
    for (const e of events) await js.publish(`mapped.${e.item}`, JSON.stringify(e));
    for (const seq of [1, 2, 3, 300, 600]) {
      const m = await jsm.streams.getMessage("mapped", { seq });
      const item = events[seq - 1]!.item;
      expect(m!.subject).toBe(`mapped.${partitionOfKey(item, partitions)}.${item}`);
    }
    const p = pipeline("mapped", { partitions });
    p.source("sales", { stream: "mapped", partitionSubject: "mapped.{partition}.*", schema: Sale })
      .keyBy("by-item", "item")
      .aggregate("per-item", (a) => ({ revenue: a.sum("amount") }))
      .toTable("mapped_items");
    const worker = await Worker.start(nc, p, { checkpointMs: 100, tableFlushMs: 50 });
    try {
      await waitFor(() => (worker.messagesRead.sales ?? 0) === events.length, {
        timeoutMs: 20_000,
        message: () => `read ${worker.messagesRead.sales} of ${events.length}`,
      });
      const revenue = new Map<string, number>();
      for (const e of events) revenue.set(e.item, (revenue.get(e.item) ?? 0) + e.amount);
      await waitFor(async () => {
        const rows = await readTable<{ key: string; revenue: number }>(nc, "mapped_items");
        return rows.length === revenue.size && rows.every((r) => revenue.get(r.key) === r.revenue);
      }, { timeoutMs: 20_000, message: "revenue per item" });
      expect(await readDeadLetters(nc, "mapped")).toEqual([]);
    } finally {
      await worker.stop();
    }
  });
});

describe("a repartitioned source", () => {
  const nats = useNatsServer();
  const Timed = Schema.Struct({ item: Schema.String, category: Schema.String, amount: Schema.Number, ts: Schema.Number });
  const shop = (id: string, repartition: boolean) => {
    const p = pipeline(id, { partitions });
    const source = p.source("sales", {
      stream: "timed",
      schema: Timed,
      eventTime: (s) => s.ts,
      maxOutOfOrderMs: 500,
      ...(repartition ? { repartition } : {}),
    });
    const perWindow = source.keyBy("by-item", "item").window("per-10s", { size: 10_000 })
      .aggregate("item-10s", (a) => ({ sales: a.count(), revenue: a.sum("amount") }));
    perWindow.toTable(`${id}_item_10s`);
    perWindow.lateEvents("late").keyBy("late-by-category", "category")
      .aggregate("late-per-category", (a) => ({ late: a.count() }))
      .toTable(`${id}_late`);
    source.filter("big", (s) => s.amount > 10).keyBy("by-category", "category")
      .aggregate("per-category", (a) => ({ revenue: a.sum("amount") }))
      .toTable(`${id}_categories`);
    return p;
  };

  it("is read by one worker, and gives the same tables as reading it directly", { timeout: 90_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "timed", subjects: ["timed.>"] });
    const js = jetstream(nc);
    // Up to 1.5 s out of order against a bound of 500 ms: some events are late.
    const events = sales(4_000).map((e, i) => ({ ...e, ts: 1_700_000_000_000 + i * 20 - ((i * 7717) % 1_500) }));
    for (const e of events) await js.publish("timed.sale", JSON.stringify(e));
    const options = { checkpointMs: 100, tableFlushMs: 50 };
    const direct = await Worker.start(nc, shop("direct", false), options);
    const keyedSteps = ["item-10s", "late-per-category", "per-category"];
    const share = (qs: number[], withSource: boolean) => [
      ...qs.flatMap((partition) => keyedSteps.map((step) => ({ step, partition }))),
      ...(withSource ? [{ step: "sales", partition: 0 }] : []),
    ];
    const a = await Worker.start(nc, shop("repart", true), { ...options, assignments: share([0, 1], true) });
    const b = await Worker.start(nc, shop("repart", true), { ...options, assignments: share([2, 3], false) });
    const rows = async (table: string) =>
      (await readTable<{ key: string; windowStart?: number }>(nc, table))
        .map((r) => JSON.stringify(r)).sort();
    try {
      for (const w of [direct, a, b]) {
        await waitFor(async () => Object.values(await w.lag()).every((n) => n === 0), {
          timeoutMs: 40_000,
          message: "every source and edge read and committed",
        });
      }
      for (const table of ["item_10s", "late", "categories"]) {
        const want = await rows(`direct_${table}`);
        expect(want.length, table).toBeGreaterThan(0);
        await waitFor(async () => JSON.stringify(await rows(`repart_${table}`)) === JSON.stringify(want), {
          timeoutMs: 20_000,
          message: `repart_${table} equal to direct_${table}`,
        });
      }
      expect((await rows("direct_late")).length).toBeGreaterThan(0);
      // Only the holder of the source's partition read it; the other read its share of the edge.
      expect(a.messagesRead["sales-log"]).toBe(events.length);
      expect(b.messagesRead["sales-log"]).toBeUndefined();
      expect(b.messagesRead.sales).toBeGreaterThan(0);
      expect(b.messagesRead.sales).toBeLessThan(a.messagesRead.sales! + b.messagesRead.sales!);
    } finally {
      await Promise.all([direct.stop(), a.stop(), b.stop()]);
    }
  });

  it(
    "sends batches of inputs, and a replay after the duplicate window, cut into other batches, sends nothing twice",
    { timeout: 90_000 },
    async () => {
      const nc = await nats.connect();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "rsales", subjects: ["rsales.>"] });
      // The edge stream made beforehand, with a duplicate window of 200 ms instead of 10 minutes.
      await jsm.streams.add({
        name: "eddy-edge-rbatch-sales",
        subjects: ["eddy.edge.rbatch.sales.>"],
        duplicate_window: 200_000_000,
      });
      const js = jetstream(nc);
      const events = sales(1_000);
      const publish = (from: number, to: number) =>
        Promise.all(events.slice(from, to).map((e) => js.publish("rsales.sale", JSON.stringify(e))));
      const p = () => {
        const p = pipeline("rbatch", { partitions });
        p.source("sales", { stream: "rsales", schema: Sale, repartition: true })
          .keyBy("by-category", "category")
          .aggregate("per-category", (a) => ({ sales: a.count(), revenue: a.sum("amount") }))
          .toTable("rbatch_categories");
        return p;
      };
      const expected = new Map<string, { key: string; sales: number; revenue: number }>();
      for (const e of events) {
        const row = expected.get(e.category) ?? { key: e.category, sales: 0, revenue: 0 };
        row.sales++;
        row.revenue += e.amount;
        expected.set(e.category, row);
      }
      const table = async () =>
        (await readTable<{ key: string; sales: number; revenue: number }>(nc, "rbatch_categories"))
          .map(({ key, sales, revenue }) => ({ key, sales, revenue })).sort((a, b) => a.key.localeCompare(b.key));
      const want = [...expected.values()].sort((a, b) => a.key.localeCompare(b.key));
      const reader = await Worker.start(nc, p(), {
        checkpointMs: 100,
        assignments: Array.from({ length: partitions }, (_, partition) => ({ step: "per-category", partition })),
      });
      const writing = [{ step: "sales", partition: 0 }];
      try {
        // The writer never checkpoints after its start, and reads 600 events in batches of 64.
        const never = { checkpointMs: 600_000, checkpointEvents: 10_000_000, idleCheckpointMs: Number.POSITIVE_INFINITY };
        await publish(0, 600);
        const first = await Worker.start(nc, p(), { ...never, maxBatch: 64, assignments: writing });
        await waitFor(() => (first.messagesRead["sales-log"] ?? 0) >= 600, { timeoutMs: 30_000, message: "600 read" });
        await waitFor(async () => (await jsm.streams.info("eddy-edge-rbatch-sales")).state.messages > 0, {
          timeoutMs: 10_000,
          message: "batches on the edge",
        });
        await first.abandon(writing); // a crash: no final checkpoint
        await first.stop();
        // Batches: far fewer messages than events times the partitions they went to.
        expect((await jsm.streams.info("eddy-edge-rbatch-sales")).state.messages).toBeLessThan(600 / 4);

        // Wait until the server forgets message ids (the window passed), then replay everything,
        // 400 more events behind, in batches of 500: their ranges overlap the first run's.
        await js.publish("eddy.edge.rbatch.sales.probe", "{}", { msgID: "probe" });
        await waitFor(async () => !(await js.publish("eddy.edge.rbatch.sales.probe", "{}", { msgID: "probe" })).duplicate, {
          timeoutMs: 10_000,
          message: "the duplicate window to pass",
        });
        await publish(600, 1_000);
        const second = await Worker.start(nc, p(), { checkpointMs: 100, maxBatch: 500, assignments: writing });
        await waitFor(() => (second.messagesRead["sales-log"] ?? 0) >= 1_000, { timeoutMs: 30_000, message: "replayed" });
        const caughtUp = async (w: Worker) => Object.values(await w.lag()).every((n) => n === 0);
        await waitFor(() => caughtUp(second), { timeoutMs: 30_000, message: "written" });
        await second.stop();
        await waitFor(() => caughtUp(reader), { timeoutMs: 30_000, message: "read" });
        await waitFor(async () => JSON.stringify(await table()) === JSON.stringify(want), {
          timeoutMs: 20_000,
          message: "every category counted once",
        }).catch(() => undefined);
        expect(await table()).toEqual(want);
      } finally {
        await reader.stop();
      }
    },
  );
});
