/**
 * The watermark of an edge after a restart: the lowest over the writing partitions, each as its
 * last envelope said, also for the partitions that said nothing since the checkpoint. Envelopes
 * are written here by hand (as two writing partitions would) so that the case is exact: writer 0
 * is far ahead and says nothing more, writer 1 catches up after the reading step's restart. The
 * reading window then finds the same event late, and emits the same row, as without the restart.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { describe, expect, it } from "vitest";
import type { EdgeEnvelope } from "../actors/edge-output.ts";
import { edgeSubject } from "../src/core/names.ts";
import { partitionOfKey } from "../src/core/partition.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Ev = Schema.Struct({ k: Schema.String, ts: Schema.Number });

const windowsOverAnEdge = () => {
  const p = pipeline("edge-wm", { partitions: 2 });
  p.source("events", { stream: "edge_wm_events", schema: Ev, eventTime: (e) => e.ts, maxOutOfOrderMs: 0 })
    .keyBy("by-k", "k")
    .window("ten-seconds", { size: 10_000 })
    .aggregate("counts", (a) => ({ n: a.count() }))
    .keyBy("by-row", "key")
    .window("minute", { size: 60_000 })
    .aggregate("per-minute", (a) => ({ rows: a.count() }))
    .toTable("edge_wm_minutes");
  return p;
};

describe("an edge's watermark after a restart", () => {
  const nats = useNatsServer();

  it("starts from each writing partition's own watermark, not the lowest of them for all", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "edge_wm_events", subjects: ["edge_wm_events.>"] });
    const js = jetstream(nc);
    // Only the reading step runs; its input comes from the envelopes below.
    const assignments = [0, 1].map((partition) => ({ step: "per-minute", partition }));
    const options = { checkpointMs: 50, tableFlushMs: 0, assignments };
    const key = ["a", "b", "c", "d"].find((k) => partitionOfKey(k, 2) === 0)!;
    const send = (envelope: EdgeEnvelope) =>
      js.publish(edgeSubject("edge-wm", "counts", envelope.q, envelope.p), JSON.stringify(envelope));
    const row = (p: number, w: number, t: number): EdgeEnvelope => ({ p, q: 0, w, t, r: [["by-row", key, { key, n: 1 }]] });
    const position = (worker: Worker) => worker.status().find((s) => s.partition === 0)!.committed.counts ?? 0;

    const first = await Worker.start(nc, windowsOverAnEdge(), options);
    try {
      await send({ p: 0, q: 0, w: 100_000 }); // writer 0 is far ahead, and says nothing more
      await send({ p: 1, q: 0, w: 0 });
      await send(row(1, 0, 10_000)); // on time: the edge's watermark is 0
      await waitFor(() => position(first) >= 3, { timeoutMs: 20_000, message: "the first three envelopes committed" });
    } finally {
      await first.stop();
    }

    const second = await Worker.start(nc, windowsOverAnEdge(), options);
    try {
      await send({ p: 1, q: 0, w: 200_000 }); // now the lowest is writer 0's 100,000: the minute closes
      await send(row(1, 200_000, 20_000)); // late: its minute closed at 100,000
      await send({ p: 0, q: 0, w: 300_000 });
      await waitFor(() => position(second) >= 6, { timeoutMs: 20_000, message: "all six envelopes committed" });
      const status = second.status().find((s) => s.partition === 0)!;
      expect(status.lateEvents, "the event after the restart is late, as it is without the restart").toBe(1);
    } finally {
      await second.stop();
    }
    const rows = await readTable<{ key: string; windowStart: number; rows: number }>(nc, "edge_wm_minutes");
    expect(rows.map(({ key, windowStart, rows }) => ({ key, windowStart, rows }))).toEqual([{ key, windowStart: 0, rows: 1 }]);
  });
});
