/**
 * State TTL: a key idle (in event time) for longer than the TTL is dropped with its table row; a
 * later event starts it afresh. Expiry follows the watermark, so the batch oracle agrees.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { evaluate } from "../src/oracle/batch.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Visit = Schema.Struct({ user: Schema.String, ts: Schema.Number });

function visits() {
  const p = pipeline("ttl", { partitions: 2 });
  p.source("visits", { stream: "visits", schema: Visit, eventTime: (v) => v.ts })
    .keyBy("by-user", "user")
    .aggregate("count", (a) => ({ visits: a.count(), first: a.min("ts") }), { ttlMs: 5_000 })
    .toTable("recent_visits");
  return p;
}

describe("state TTL", () => {
  const nats = useNatsServer();

  it("drops idle keys and their rows, and restarts them on a later event", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    await (await jetstreamManager(nc)).streams.add({ name: "visits", subjects: ["visits"] });
    const events = [
      { user: "ann", ts: 0 },
      { user: "bob", ts: 0 },
      { user: "ann", ts: 1_000 },
      ...Array.from({ length: 20 }, (_, i) => ({ user: "bob", ts: 2_000 + i * 1_000 })), // ann idle from 1 s
      { user: "ann", ts: 22_000 }, // after ann expired (at watermark 6 s): a fresh start
      { user: "cid", ts: 22_500 },
      { user: "bob", ts: 30_000 }, // watermark 30 s: cid (last 22.5 s) expires, ann (22 s) too
    ];
    const js = jetstream(nc);
    for (const e of events) await js.publish("visits", JSON.stringify(e));
    const worker = await Worker.start(nc, visits(), { checkpointMs: 20 });
    await waitFor(() => worker.committedPosition("visits") >= events.length, { timeoutMs: 20_000, message: "caught up" });
    const keys = worker.status().reduce((n, a) => n + a.keys, 0);
    await worker.stop();

    const rows = await readTable<{ key: string; visits: number; first: number }>(nc, "recent_visits");
    expect(rows).toEqual([{ key: "bob", visits: 22, first: 0 }]);
    expect(keys).toBe(1);
    expect(evaluate(visits(), { visits: events }).tables.recent_visits).toEqual(rows);
    // Before the end: ann's second visit started afresh (the oracle shows it without the last event).
    const before = evaluate(visits(), { visits: events.slice(0, -1) }).tables.recent_visits!;
    expect(before.find((r) => r.key === "ann")).toEqual({ key: "ann", visits: 1, first: 22_000 });
  });

  it("needs event time", () => {
    const p = pipeline("ttl-untimed");
    expect(() =>
      p.source("v", { stream: "v", schema: Visit }).keyBy("k", "user").aggregate("n", (a) => ({ n: a.count() }), { ttlMs: 1_000 })
    ).toThrow(/state TTL needs event time/);
  });
});
