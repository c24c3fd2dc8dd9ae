/**
 * Result tables are fresher than checkpoints: changed pages are written every `tableFlushMs`
 * between checkpoints, so rows show an event's effect long before the checkpoint that commits it;
 * the committed state does not move. A stop and restart still gives exact rows. Rounds take turns
 * at who goes first.
 */
import { describe, expect, it } from "vitest";
import { Worker } from "../src/runtime/worker.ts";
import { TableFlusher } from "../actors/table-flush.ts";
import { manualClock, systemClock } from "../src/core/clock.ts";
import { TableReplica } from "../src/serve/replica.ts";
import { benchPipeline, ensureStream, eventBytes, expectedRow, publishEvents } from "../scripts/bench-common.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

describe("table flush", () => {
  const nats = useNatsServer();

  it("starts each round with the next actor, so a round cut short by unacknowledged bytes starves none", () => {
    const clock = manualClock();
    const flusher = new TableFlusher(clock, { intervalMs: 100 });
    const calls: string[] = [];
    for (const name of ["a", "b", "c"]) flusher.add({ flush: () => calls.push(name) });
    clock.advance(300);
    flusher.stop();
    expect(calls.join("")).toBe("abcbcacab");
  });

  it("shows rows between checkpoints without committing state, and restarts exactly", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const keys = 50;
    await ensureStream(nc, "flush-events", "flush.events");
    const pipeline = () => benchPipeline("flush", "flush-events", "flush_totals", 2);
    // Checkpoints only after 300 events per actor (or a minute): the first 600 events commit, the
    // next 100 stay uncommitted.
    const options = { checkpointMs: 60_000, checkpointEvents: 300, tableFlushMs: 50 };
    const worker = await Worker.start(nc, pipeline(), options);
    const replica = await TableReplica.open(nc, "flush_totals");
    try {
      await publishEvents(nc, "flush.events", 0, 600, keys);
      await waitFor(() => worker.committedPosition("events") >= 300, { timeoutMs: 20_000, message: "a first checkpoint" });
      const committed = worker.committedPosition("events");
      await publishEvents(nc, "flush.events", 600, 700, keys);
      const exact = (n: number) =>
        Array.from({ length: keys }, (_, k) => expectedRow(k, n, keys)).every((want, k) => {
          const row = replica.get(`k-${k}`) as { count: number; sum: number } | undefined;
          return row?.count === want.count && row.sum === want.sum;
        });
      await waitFor(() => exact(700), { timeoutMs: 10_000, message: "every row reflects all 700 events" });
      const lowestProcessed = Math.min(...worker.status().map((a) => a.positions.events ?? 0));
      expect(lowestProcessed).toBe(700);
      // The rows are ahead of what is committed: no checkpoint covers event 700 yet.
      expect(worker.committedPosition("events")).toBeLessThan(700);
      expect(worker.committedPosition("events")).toBeGreaterThanOrEqual(committed);
    } finally {
      await worker.stop();
    }
    // A new worker replays from the committed position; the rows stay exact.
    const second = await Worker.start(nc, pipeline(), options);
    try {
      nc.publish("flush.events", eventBytes(700, keys));
      await waitFor(() => Math.min(...second.status().map((a) => a.positions.events ?? 0)) === 701, {
        timeoutMs: 10_000,
        message: "the restarted worker reads event 700",
      });
      await waitFor(
        () =>
          Array.from({ length: keys }, (_, k) => expectedRow(k, 701, keys)).every((want, k) => {
            const row = replica.get(`k-${k}`) as { count: number } | undefined;
            return row?.count === want.count;
          }),
        { timeoutMs: 10_000, message: "rows exact after the restart" },
      );
    } finally {
      await second.stop();
      replica.close();
    }
  });

  it("shows a new pipeline's rows before its first checkpoint", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const keys = 20;
    await ensureStream(nc, "fresh-events", "fresh.events");
    // A checkpoint only after a minute (or 100,000 events): the first rows come from flushes alone.
    const worker = await Worker.start(nc, benchPipeline("fresh", "fresh-events", "fresh_totals", 2), {
      checkpointMs: 60_000,
      idleCheckpointMs: Number.POSITIVE_INFINITY,
      tableFlushMs: 50,
    });
    const replica = await TableReplica.open(nc, "fresh_totals");
    try {
      await publishEvents(nc, "fresh.events", 0, 200, keys);
      await waitFor(
        () =>
          Array.from({ length: keys }, (_, k) => expectedRow(k, 200, keys)).every((want, k) => {
            const row = replica.get(`k-${k}`) as { count: number } | undefined;
            return row?.count === want.count;
          }),
        { timeoutMs: 10_000, message: "every row, before any checkpoint" },
      );
      expect(worker.status().every((a) => a.checkpoint === 0)).toBe(true);
    } finally {
      await worker.stop();
      replica.close();
    }
  });

  it("lets the event loop turn between actors' flushes of a long round", async () => {
    // Three actors whose flushes take 3 ms each: a timer due meanwhile runs before the last one.
    const round = (clock: typeof systemClock, advance?: () => void) =>
      new Promise<{ flushed: number; timerAfter: number | undefined }>((done) => {
        const flusher = new TableFlusher(clock, { intervalMs: 10, sliceMs: 2 });
        let flushed = 0;
        let timerAfter: number | undefined;
        for (let i = 0; i < 3; i++) {
          flusher.add({
            flush() {
              if (flushed === 0) setTimeout(() => (timerAfter ??= flushed), 0);
              const until = performance.now() + 3;
              while (performance.now() < until);
              if (++flushed === 3) {
                flusher.stop();
                done({ flushed, timerAfter });
              }
            },
          });
        }
        advance?.();
      });
    const sliced = await round(systemClock);
    expect(sliced.timerAfter).toBeLessThan(3);
    const clock = manualClock(0); // its time never moves during the round: one slice
    const whole = await round(clock, () => clock.advance(10));
    expect(whole).toEqual({ flushed: 3, timerAfter: undefined });
  });

  it("skips its rounds while the worker catches up, and flushes nothing once stopped", () => {
    let catchingUp = true;
    const clock = manualClock(0);
    const flusher = new TableFlusher(clock, { intervalMs: 100, catchingUp: () => catchingUp });
    let flushed = 0;
    flusher.add({ flush: () => void flushed++ });
    clock.advance(300);
    expect(flushed).toBe(0);
    catchingUp = false;
    clock.advance(100);
    expect(flushed).toBe(1);
    flusher.stop();
    clock.advance(300);
    expect(flushed).toBe(1);
  });
});
