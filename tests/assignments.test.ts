/**
 * A worker runs a set of (step, partition) assignments that grows and shrinks while it runs: two
 * workers splitting a pipeline's partitions give the same table as one, and a partition released
 * by one (a final checkpoint) and assigned to the other goes on from that checkpoint, with nothing
 * counted twice or lost.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { Worker } from "../src/runtime/worker.ts";
import { benchPipeline, ensureStream, publishEvents, totalsExact } from "../scripts/bench-common.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

describe("assignments", () => {
  const nats = useNatsServer();
  const keys = 40;
  const exact = (nc: NatsConnection, n: number) => totalsExact(nc, "split_totals", n, keys);

  it(
    "split over two workers, and moved from one to the other while running, counts every event once",
    { timeout: 90_000 },
    async () => {
      const nc = await nats.connect();
      await ensureStream(nc, "split-events", "split.events");
      const pipeline = () => benchPipeline("split", "split-events", "split_totals", 4);
      const options = { checkpointMs: 100, tableFlushMs: 50 };
      const a = await Worker.start(nc, pipeline(), {
        ...options,
        assignments: [{ step: "totals", partition: 0 }, { step: "totals", partition: 1 }],
      });
      const b = await Worker.start(nc, pipeline(), {
        ...options,
        assignments: [{ step: "totals", partition: 2 }, { step: "totals", partition: 3 }],
      });
      try {
        expect(a.assignments.map((x) => x.partition)).toEqual([0, 1]);
        await publishEvents(nc, "split.events", 0, 2_000, keys);
        await waitFor(() => exact(nc, 2_000), { timeoutMs: 20_000, message: "both halves counted" });

        // Partition 1 moves from a to b while events flow.
        const more = publishEvents(nc, "split.events", 2_000, 6_000, keys);
        await a.release([{ step: "totals", partition: 1 }]);
        expect(a.assignments.map((x) => x.partition)).toEqual([0]);
        await b.assign([{ step: "totals", partition: 1 }]);
        expect(b.assignments.map((x) => x.partition).sort()).toEqual([1, 2, 3]);
        await more;
        await waitFor(() => exact(nc, 6_000), { timeoutMs: 20_000, message: "every row exact after the move" });
        const status = [...a.status(), ...b.status()];
        // a keeps the status of no partition it released; b's partition 1 resumed from a's final checkpoint.
        expect(status.filter((s) => s.partition === 1)).toHaveLength(1);
      } finally {
        await a.stop();
        await b.stop();
      }
      expect(await exact(nc, 6_000)).toBe(true);
    },
  );
});
