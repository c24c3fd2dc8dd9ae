/**
 * Event-time windows: tumbling and hopping windows over out-of-order events equal a batch
 * computation of the same definition; events behind the watermark go to the late-events stream
 * with a reason; window state is dropped once the watermark passes; a stop and restart in the
 * middle emits every window exactly once.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { generateOrders, publishOrders } from "../examples/coffee-shop/orders.ts";
import { Order as OrderSchema } from "../examples/coffee-shop/orders.ts";
import { readLateEvents } from "../src/log/side-outputs.ts";
import { Schema } from "effect";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readRow, readTable } from "../src/state/table.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { windowOracle as oracle, type WindowRow } from "./support/window-oracle.ts";

function windowed(
  id: string,
  size: number,
  slide: number,
  stream = "orders",
  allowedLatenessMs = 0,
  emit: "final" | "updates" = "final",
) {
  const p = pipeline(id, { partitions: 3 });
  const out = p.source("orders", { stream, schema: OrderSchema, eventTime: (o) => o.ts, maxOutOfOrderMs: 1_000 })
    .keyBy("by-store", "store")
    .window("w", { size, slide, allowedLatenessMs, emit })
    .aggregate("per-window", (a) => ({ orders: a.count(), qty: a.sum("qty") }));
  out.toStream("out", { stream: `${id}_out` });
  out.toTable(`${id}_windows`);
  return p;
}

type Emitted = Omit<WindowRow, "revenue">;
const sortRows = (rows: Emitted[]) =>
  [...rows].map(({ key, windowStart, windowEnd, orders, qty }) => ({ key, windowStart, windowEnd, orders, qty })).sort((a, b) =>
    a.key.localeCompare(b.key) || a.windowStart - b.windowStart
  );

describe("event-time windows", () => {
  const nats = useNatsServer();
  const count = 6_000;
  // 100 ms apart with up to 2 s of disorder against a 1 s bound: some events are late.
  const orders = [...generateOrders({ seed: 3, count })];

  it("tumbling windows equal the batch definition; late events are set aside; state is freed", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 3, count });
    const worker = await Worker.start(nc, windowed("tumble", 60_000, 60_000), { checkpointMs: 50 });
    await waitFor(() => worker.committedPosition("orders") >= count, { timeoutMs: 30_000, message: "caught up" });
    const keys = worker.status().reduce((n, a) => n + a.keys, 0);
    await worker.stop();

    const { fired, late } = oracle(orders, 60_000, 60_000, 1_000);
    expect(fired.length).toBeGreaterThan(40);
    expect(late.length).toBeGreaterThan(0);
    expect(sortRows(await readStreamJson<Emitted>(nc, "tumble_out"))).toEqual(sortRows(fired));
    // The same rows in the result table, which keeps them after the windows' state is gone.
    expect(sortRows(await readTable<Emitted>(nc, "tumble_windows"))).toEqual(sortRows(fired));
    const one = fired[7]!;
    expect(await readRow(nc, "tumble_windows", `${one.key}|${one.windowStart}`)).toMatchObject({
      key: one.key,
      windowStart: one.windowStart,
      orders: one.orders,
    });
    const lateEvents = await readLateEvents(nc, "tumble");
    expect(lateEvents.map((e) => e.sourceSeq).sort((a, b) => a - b)).toEqual(late);
    expect(lateEvents[0]!.reason).toMatch(/older than watermark/);
    // Only windows the watermark has not passed keep state: at most one per store.
    expect(keys).toBeLessThanOrEqual(5);
  });

  it("hopping windows, across a stop and restart, emit every window once", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = () => windowed("hop", 300_000, 60_000, "orders2");
    // The first worker sees half of the orders, stops, and a second one carries on.
    await publishOrders(nc, { stream: "orders2", subjectPrefix: "orders2", seed: 3, count: count / 2 });
    const first = await Worker.start(nc, p(), { checkpointMs: 50 });
    await waitFor(() => first.committedPosition("orders") >= count / 2, { timeoutMs: 30_000, message: "half way" });
    await first.stop();
    const half = (await readStreamJson<Emitted>(nc, "hop_out")).length;
    expect(half).toBeGreaterThan(0);
    await publishOrders(nc, { stream: "orders2", subjectPrefix: "orders2", seed: 3, count });
    const second = await Worker.start(nc, p(), { checkpointMs: 50 });
    await waitFor(() => second.committedPosition("orders") >= count, { timeoutMs: 30_000, message: "caught up" });
    await second.stop();
    const { fired } = oracle(orders, 300_000, 60_000, 1_000);
    expect(sortRows(await readStreamJson<Emitted>(nc, "hop_out"))).toEqual(sortRows(fired));
    expect(sortRows(await readTable<Emitted>(nc, "hop_windows"))).toEqual(sortRows(fired));
    expect((await (await jetstreamManager(nc)).streams.info("hop_out")).state.messages).toBe(fired.length);
  });

  it("with allowed lateness, late events update their window and re-emit its row", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    // "orders" holds the 6,000 orders published by the first test.
    const worker = await Worker.start(nc, windowed("lateness", 60_000, 60_000, "orders", 800), { checkpointMs: 50 });
    await waitFor(() => worker.committedPosition("orders") >= count, { timeoutMs: 30_000, message: "caught up" });
    await worker.stop();
    const { fired, late, emissions } = oracle(orders, 60_000, 60_000, 1_000, 800);
    const rows = await readStreamJson<Emitted>(nc, "lateness_out");
    // The last row of each window is its final value; a window is emitted once plus once per late update.
    const last = new Map<string, Emitted>();
    const counts = new Map<string, number>();
    for (const r of rows) {
      const id = `${r.key}/${r.windowStart}`;
      last.set(id, r);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(sortRows([...last.values()])).toEqual(sortRows(fired));
    expect(sortRows(await readTable<Emitted>(nc, "lateness_windows"))).toEqual(sortRows(fired));
    expect(counts).toEqual(new Map([...emissions].filter(([id]) => last.has(id))));
    expect([...counts.values()].some((n) => n > 1)).toBe(true);
    expect((await readLateEvents(nc, "lateness")).map((e) => e.sourceSeq).sort((a, b) => a - b)).toEqual(late);
  });

  it("session windows merge events closer than the gap, and equal the batch definition", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "visits", subjects: ["visits"] });
    // Per user, bursts of clicks: gaps inside a burst < 30 s, between bursts > 30 s; a little disorder.
    const clicks: { user: string; ts: number }[] = [];
    for (let i = 0; i < 3_000; i++) {
      const user = `u${i % 7}`;
      const burst = Math.floor(i / 70);
      clicks.push({ user, ts: burst * 120_000 + (i % 70) * 1_000 + ((i * 37) % 5) * 300 });
    }
    const js = jetstream(nc);
    for (const c of clicks) await js.publish("visits", JSON.stringify(c));
    const p = pipeline("sessions", { partitions: 2 });
    p.source("visits", {
      stream: "visits",
      schema: Schema.Struct({ user: Schema.String, ts: Schema.Number }),
      eventTime: (c) => c.ts,
      maxOutOfOrderMs: 2_000,
    })
      .keyBy("by-user", "user")
      .window("visit", { gap: 30_000 })
      .aggregate("clicks", (a) => ({ clicks: a.count(), first: a.min("ts"), last: a.max("ts") }))
      .toStream("sessions-out", { stream: "sessions_out" });
    const worker = await Worker.start(nc, p, { checkpointMs: 50 });
    await waitFor(() => worker.committedPosition("visits") >= clicks.length, { timeoutMs: 30_000, message: "caught up" });
    await worker.stop();

    // The batch definition: per user, sort the clicks by time and cut where the gap is >= 30 s.
    // (Disorder here is at most 1.2 s, under the 2 s bound: no click is late.)
    expect(await readLateEvents(nc, "sessions")).toEqual([]);
    const byUser = new Map<string, number[]>();
    for (const c of clicks) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c.ts]);
    const finalWm = Math.max(...clicks.map((c) => c.ts)) - 2_000;
    const expected: { key: string; windowStart: number; windowEnd: number; clicks: number; first: number; last: number }[] = [];
    for (const [user, times] of byUser) {
      times.sort((a, b) => a - b);
      let start = 0;
      for (let i = 1; i <= times.length; i++) {
        if (i === times.length || times[i]! - times[i - 1]! >= 30_000) {
          const session = times.slice(start, i);
          const end = session.at(-1)! + 30_000;
          if (end <= finalWm) {
            expected.push({
              key: user,
              windowStart: session[0]!,
              windowEnd: end,
              clicks: session.length,
              first: session[0]!,
              last: session.at(-1)!,
            });
          }
          start = i;
        }
      }
    }
    const got = await readStreamJson<Emitted>(nc, "sessions_out");
    const order = (a: { key: string; windowStart: number }, b: { key: string; windowStart: number }) =>
      a.key.localeCompare(b.key) || a.windowStart - b.windowStart;
    expect((got as unknown as typeof expected).sort(order)).toEqual(expected.sort(order));
    expect(expected.length).toBeGreaterThan(30);
  });

  it("in the updates mode, every change upserts the window's row, final once it closes", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const worker = await Worker.start(nc, windowed("early", 60_000, 60_000, "orders", 0, "updates"), { checkpointMs: 50 });
    await waitFor(() => worker.committedPosition("orders") >= count, { timeoutMs: 30_000, message: "caught up" });
    await worker.stop();
    const { fired, open, late } = oracle(orders, 60_000, 60_000, 1_000);
    const table = await readTable<Emitted & { final: boolean }>(nc, "early_windows");
    expect(sortRows(table.filter((r) => r.final))).toEqual(sortRows(fired));
    expect(sortRows(table.filter((r) => !r.final))).toEqual(sortRows(open));
    expect(open.length).toBeGreaterThan(0);
    // The stream: one message per accepted event and window, plus one when the window closes.
    const messages = await readStreamJson<Emitted & { final: boolean }>(nc, "early_out");
    const accepted = count - late.length; // tumbling: one window per event
    expect(messages.length).toBe(accepted + fired.length);
    expect(messages.filter((m) => m.final).length).toBe(fired.length);
  });
});
