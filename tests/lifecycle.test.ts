/**
 * The operator lifecycle machine, driven by a manual clock and a scripted core (no server):
 * recovery, checkpoints by time, by event count and when the input pauses, failure with
 * exponential backoff and restart, draining on stop (also when the stop comes while it recovers
 * or checkpoints), and table flushes held back while a checkpoint writes.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { type ActorCore, lifecycleState, lifecycleStates, operatorLifecycle } from "../actors/lifecycle.ts";
import type { Batch } from "../actors/operator.ts";
import { manualClock } from "../src/core/clock.ts";

/** A core whose async steps resolve when the test says so. */
function scriptedCore() {
  const log: string[] = [];
  const pending: { what: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  const core: ActorCore = {
    recover: () => new Promise((resolve, reject) => (log.push("recover"), pending.push({ what: "recover", resolve, reject }))),
    checkpoint: () =>
      new Promise((resolve, reject) => (log.push("checkpoint"), pending.push({ what: "checkpoint", resolve, reject }))),
    process: (batch: Batch) => void log.push(`process ${batch.upTo}`),
    idle: (source) => void log.push(`idle ${source}`),
    flushTables: () => void log.push("flush"),
  };
  const settle = async (what: string, error?: Error) => {
    const next = pending.shift();
    expect(next?.what).toBe(what);
    if (error) next!.reject(error);
    else next!.resolve();
    await new Promise((r) => setTimeout(r, 0)); // let the promise actor report back
  };
  return { core, log, settle };
}

const state = (actor: { getSnapshot(): Parameters<typeof lifecycleState>[0] }) => lifecycleState(actor.getSnapshot());

const batch = (upTo: number, n: number): Batch => ({
  source: "s",
  from: upTo - n + 1,
  upTo,
  watermark: Number.NEGATIVE_INFINITY,
  records: Array.from(
    { length: n },
    (_, i) => ({
      seq: upTo - n + 1 + i,
      key: "k",
      hash: 0,
      value: i,
      time: Number.NaN,
      watermark: Number.NEGATIVE_INFINITY,
      via: "k",
    }),
  ),
});

describe("operator lifecycle", () => {
  it("recovers, runs, checkpoints on time and on event count, drains on stop", async () => {
    const clock = manualClock();
    const { core, log, settle } = scriptedCore();
    const actor = createActor(operatorLifecycle, { input: { core, clock, checkpointMs: 1000, checkpointEvents: 10 }, clock });
    actor.start();
    expect(state(actor)).toBe("recovering");
    actor.send({ type: "batch", batch: batch(1, 1) }); // ignored until recovered
    await settle("recover");
    expect(state(actor)).toBe("running");

    const five = batch(5, 5);
    actor.send({ type: "batch", batch: five });
    expect(five.records).toEqual([]); // folded, then let go: nothing the machine keeps holds them
    clock.advance(999);
    expect(state(actor)).toBe("running");
    clock.advance(1);
    expect(state(actor)).toBe("checkpointing");
    actor.send({ type: "batch", batch: batch(7, 2) }); // processed while the checkpoint is written
    await settle("checkpoint");
    expect(state(actor)).toBe("running");

    actor.send({ type: "batch", batch: batch(20, 13) }); // 15 events since: over the count
    expect(state(actor)).toBe("checkpointing");
    await settle("checkpoint");

    actor.send({ type: "stop" });
    expect(state(actor)).toBe("draining");
    await settle("checkpoint");
    expect(state(actor)).toBe("stopped");
    expect(log).toEqual(["recover", "process 5", "checkpoint", "process 7", "process 20", "checkpoint", "checkpoint"]);
  });

  it("checkpoints when its input paused for idleCheckpointMs with events waiting, a quarter interval after the last", async () => {
    const clock = manualClock();
    const { core, log, settle } = scriptedCore();
    const actor = createActor(operatorLifecycle, {
      input: { core, clock, checkpointMs: 10_000, checkpointEvents: 1000, idleCheckpointMs: 100 },
      clock,
    });
    actor.start();
    await settle("recover");
    clock.advance(500); // nothing processed: no checkpoint however long the pause
    expect(state(actor)).toBe("running");

    // Batches 60 ms apart keep it running; 100 ms after the last one it checkpoints.
    for (let i = 1; i <= 5; i++) {
      actor.send({ type: "batch", batch: batch(i, 1) });
      clock.advance(60);
      expect(state(actor)).toBe("running");
    }
    clock.advance(39);
    expect(state(actor)).toBe("running");
    clock.advance(1);
    expect(state(actor)).toBe("checkpointing");
    await settle("checkpoint");
    clock.advance(1000); // everything is checkpointed: the pause goes on without another
    expect(state(actor)).toBe("running");
    expect(log).toEqual(["recover", "process 1", "process 2", "process 3", "process 4", "process 5", "checkpoint"]);

    // A trickle: the next pause checkpoints no sooner than 2,500 ms (a quarter of the interval)
    // after the last checkpoint began (at 840): at 3340, not 100 ms after this batch.
    actor.send({ type: "batch", batch: batch(6, 1) }); // at 1840
    clock.advance(1499);
    expect(state(actor)).toBe("running");
    clock.advance(1);
    expect(state(actor)).toBe("checkpointing");
    await settle("checkpoint");

    // Infinity: only the interval.
    const quiet = scriptedCore();
    const other = createActor(operatorLifecycle, {
      input: {
        core: quiet.core,
        clock,
        checkpointMs: 10_000,
        checkpointEvents: 1000,
        idleCheckpointMs: Number.POSITIVE_INFINITY,
      },
      clock,
    });
    other.start();
    await quiet.settle("recover");
    other.send({ type: "batch", batch: batch(1, 1) });
    clock.advance(9_999);
    expect(state(other)).toBe("running");
    clock.advance(1);
    expect(state(other)).toBe("checkpointing");
  });

  it("fails, backs off exponentially, and restarts by recovering", async () => {
    const clock = manualClock();
    const { core, log, settle } = scriptedCore();
    const actor = createActor(operatorLifecycle, {
      input: { core, clock, checkpointMs: 1000, checkpointEvents: 1000, backoffMs: 100, maxBackoffMs: 300 },
      clock,
    });
    actor.start();
    await settle("recover", new Error("no responders"));
    expect(state(actor)).toBe("failed");
    expect(String(actor.getSnapshot().context.error)).toMatch(/no responders/);
    clock.advance(99);
    expect(state(actor)).toBe("failed");
    clock.advance(1); // 100 ms: first retry
    expect(state(actor)).toBe("recovering");
    await settle("recover", new Error("still down"));
    clock.advance(199);
    expect(state(actor)).toBe("failed");
    clock.advance(1); // 200 ms: second retry
    await settle("recover", new Error("still down"));
    clock.advance(299);
    expect(state(actor)).toBe("failed");
    clock.advance(1); // capped at 300 ms
    await settle("recover");
    expect(state(actor)).toBe("running");
    expect(actor.getSnapshot().context.attempt).toBe(0);

    clock.advance(1000);
    await settle("checkpoint", new Error("fenced"));
    expect(state(actor)).toBe("failed");
    actor.send({ type: "stop" });
    expect(state(actor)).toBe("stopped");
    expect(log.filter((l) => l === "recover")).toHaveLength(4);
  });

  it("ticks a core with processing-time timers every tickMs of its clock, while running or checkpointing", async () => {
    const clock = manualClock();
    const { core, settle } = scriptedCore();
    const ticks: number[] = [];
    const actor = createActor(operatorLifecycle, {
      input: {
        core: { ...core, tick: () => void ticks.push(clock.now()) },
        clock,
        checkpointMs: 1000,
        checkpointEvents: 1000,
        tickMs: 100,
      },
      clock,
    });
    actor.start();
    clock.advance(300); // recovering: no ticks
    expect(ticks).toEqual([]);
    await settle("recover");
    clock.advance(1000); // running, then checkpointing at 1300 (ticks go on)
    expect(state(actor)).toBe("checkpointing");
    clock.advance(200);
    expect(ticks).toEqual([400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300, 1400, 1500]);
    await settle("checkpoint");
    actor.send({ type: "stop" });
    clock.advance(500); // draining: no ticks
    await settle("checkpoint");
    expect(state(actor)).toBe("stopped");
    expect(ticks).toHaveLength(12);
  });

  it("drains after the checkpoint it writes when a stop comes meanwhile, and after recovering when it comes then", async () => {
    const clock = manualClock();
    const { core, log, settle } = scriptedCore();
    const actor = createActor(operatorLifecycle, { input: { core, clock, checkpointMs: 1000, checkpointEvents: 1000 }, clock });
    actor.start();
    actor.send({ type: "stop" }); // while recovering
    expect(state(actor)).toBe("recovering");
    await settle("recover");
    expect(state(actor)).toBe("draining");
    await settle("checkpoint");
    expect(state(actor)).toBe("stopped");

    const second = scriptedCore();
    const other = createActor(operatorLifecycle, {
      input: { core: second.core, clock, checkpointMs: 1000, checkpointEvents: 1000 },
      clock,
    });
    other.start();
    await second.settle("recover");
    other.send({ type: "batch", batch: batch(3, 3) });
    other.send({ type: "checkpoint" });
    other.send({ type: "stop" }); // while checkpointing: that checkpoint goes on
    expect(other.getSnapshot().value).toEqual({ checkpointing: { then: "stop", tables: "flushed" } });
    other.send({ type: "batch", batch: batch(5, 2) }); // still folded
    await second.settle("checkpoint");
    expect(state(other)).toBe("draining"); // the events folded meanwhile get a final checkpoint
    await second.settle("checkpoint");
    expect(state(other)).toBe("stopped");
    expect(second.log).toEqual(["recover", "process 3", "checkpoint", "process 5", "checkpoint"]);
    expect(log).toEqual(["recover", "checkpoint"]);
  });

  it("flushes tables at once while running, holds a flush back while checkpointing and flushes when it ends", async () => {
    const clock = manualClock();
    const { core, log, settle } = scriptedCore();
    const actor = createActor(operatorLifecycle, { input: { core, clock, checkpointMs: 1000, checkpointEvents: 1000 }, clock });
    actor.start();
    actor.send({ type: "flush" }); // recovering: not now
    await settle("recover");
    actor.send({ type: "flush" });
    expect(log).toEqual(["recover", "flush"]);
    actor.send({ type: "checkpoint" });
    actor.send({ type: "flush" });
    actor.send({ type: "flush" }); // one flush afterwards, however many came
    expect(log).toEqual(["recover", "flush", "checkpoint"]);
    await settle("checkpoint");
    expect(log).toEqual(["recover", "flush", "checkpoint", "flush"]);
    actor.send({ type: "checkpoint" });
    await settle("checkpoint"); // no flush came: none after
    expect(log).toEqual(["recover", "flush", "checkpoint", "flush", "checkpoint"]);
  });

  it("names its states as the machine does", () => {
    expect(lifecycleStates).toEqual(["recovering", "running", "checkpointing", "draining", "failed", "stopped"]);
  });
});
