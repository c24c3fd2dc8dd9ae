/**
 * Dedup by key within a time range: the first event of a key passes, its repeats within
 * `withinMs` of event time are dropped, a repeat after that passes again; state expires by the
 * watermark (bounded on an endless stream); a stop and restart in the middle changes nothing; what
 * passes is a stream later steps read (a window counts it); the batch oracle agrees.
 */
import { describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { mulberry32 } from "../examples/coffee-shop/orders.ts";
import { createPublisher } from "../src/log/publisher.ts";
import { evaluate } from "../src/oracle/batch.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";

const Click = Schema.Struct({ clickId: Schema.String, n: Schema.Number, ts: Schema.Number });
type Click = typeof Click.Type;

function uniqueClicks() {
  const p = pipeline("dedup", { partitions: 3 });
  const unique = p.source("clicks", { stream: "clicks", schema: Click, eventTime: (c) => c.ts, maxOutOfOrderMs: 1_000 })
    .keyBy("by-click", "clickId")
    .dedup("once", { withinMs: 5_000 });
  unique.toStream("unique", { stream: "unique_clicks" });
  // What passes is a stream like any other: count it per 10 s of event time.
  unique.keyBy("all", () => "all").window("ten-s", { size: 10_000 }).aggregate("per-10s", (a) => ({ n: a.count() }))
    .toTable("unique_per_10s");
  return p;
}

/** Clicks 50 ms apart (up to 800 ms out of order); half repeat one of the last 40 click ids. */
function clicks(count: number): Click[] {
  const random = mulberry32(11);
  const out: Click[] = [];
  for (let n = 0; n < count; n++) {
    const recent = out.slice(-40);
    const clickId = recent.length > 0 && random() < 0.5
      ? recent[Math.floor(random() * recent.length)]!.clickId
      : `c${Math.floor(random() * 3_000)}`;
    out.push({ clickId, n, ts: 1_700_000_000_000 + n * 50 - Math.floor(random() * 800) });
  }
  return out;
}

describe("dedup", () => {
  const nats = useNatsServer();

  it(
    "passes the first event of a key and drops its repeats within the range, across a restart",
    { timeout: 60_000 },
    async () => {
      const nc = await nats.connect();
      await (await jetstreamManager(nc)).streams.add({ name: "clicks", subjects: ["clicks"] });
      const events = clicks(4_000);
      const publisher = createPublisher(nc);
      const encoder = new TextEncoder();
      for (const e of events) publisher.publish("clicks", encoder.encode(JSON.stringify(e)));
      await publisher.close();

      const first = await Worker.start(nc, uniqueClicks(), { checkpointMs: 50, maxBatch: 50 });
      await waitFor(() => first.committedPosition("clicks") >= 1_500, { timeoutMs: 30_000, message: "part way" });
      await first.stop();
      const second = await Worker.start(nc, uniqueClicks(), { checkpointMs: 50 });
      await waitFor(() => second.committedPosition("clicks") >= events.length, { timeoutMs: 30_000, message: "caught up" });
      const batch = evaluate(uniqueClicks(), { clicks: events });
      const windows = batch.tables.unique_per_10s as { windowStart: number }[];
      expect(windows.length).toBeGreaterThan(15);
      const counted = async () => (await readTable(nc, "unique_per_10s")).length === windows.length;
      await waitFor(counted, { timeoutMs: 30_000, message: "windows of unique clicks" });
      const keys = second.status().filter((a) => a.step === "once").reduce((n, a) => n + a.keys, 0);
      await second.stop();

      const passed = await readStreamJson<Click>(nc, "unique_clicks");
      const expected = batch.streams.unique as Click[];
      const byStart = (a: { windowStart: number }, b: { windowStart: number }) => a.windowStart - b.windowStart;
      expect((await readTable<{ windowStart: number }>(nc, "unique_per_10s")).sort(byStart)).toEqual(windows.sort(byStart));
      const byN = (a: Click, b: Click) => a.n - b.n;
      expect([...passed].sort(byN)).toEqual([...expected].sort(byN));
      // Many repeats dropped; some keys came back after the range and passed again.
      expect(passed.length).toBeLessThan(events.length * 0.7);
      const seen = new Map<string, number>();
      for (const c of passed) seen.set(c.clickId, (seen.get(c.clickId) ?? 0) + 1);
      expect([...seen.values()].some((k) => k > 1)).toBe(true);
      // No two passing events of a key within 5 s of each other.
      const last = new Map<string, number>();
      for (const c of [...passed].sort(byN)) {
        const before = last.get(c.clickId);
        if (before !== undefined) expect(Math.abs(c.ts - before)).toBeGreaterThanOrEqual(5_000);
        last.set(c.clickId, c.ts);
      }
      // Bounded state: only keys that passed within the last 5 s (plus the out-of-order bound) remain.
      const end = Math.max(...events.map((e) => e.ts)) - 1_000;
      expect(keys).toBe(new Set(passed.filter((c) => c.ts + 5_000 > end).map((c) => c.clickId)).size);
      expect(keys).toBeLessThan(200);
    },
  );

  it("needs event time and a positive range", () => {
    const p = pipeline("dedup-config");
    const untimed = p.source("u", { stream: "u", schema: Click }).keyBy("k", "clickId");
    expect(() => untimed.dedup("d", { withinMs: 1_000 })).toThrow(/needs event time/);
    const timed = p.source("t", { stream: "t", schema: Click, eventTime: (c) => c.ts }).keyBy("k2", "clickId");
    expect(() => timed.dedup("d2", { withinMs: 0 })).toThrow(/withinMs must be > 0/);
  });
});
