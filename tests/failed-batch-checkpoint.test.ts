/**
 * A batch that fails midway (an output refused: the worker lost the right to write) leaves the
 * actor's state holding part of the batch and its position none of it. A checkpoint waiting for
 * its slot meanwhile still runs after the actor failed, or was let go: it must not commit that
 * state, or the next owner replays those records onto a state that has them already (the
 * scale-out test's windows, a few orders too many, under load).
 */
import { describe, expect, it } from "vitest";
import { OperatorActor } from "../actors/operator-actor.ts";
import type { Operator, Rec } from "../actors/operator.ts";
import { systemClock } from "../src/core/clock.ts";
import { FencedError } from "../src/core/errors.ts";
import { keyHash } from "../src/core/partition.ts";
import { createPublisher } from "../src/log/publisher.ts";
import { CheckpointSlots, CheckpointStore } from "../src/state/checkpoint.ts";
import { useNatsServer } from "./support/nats.ts";

/** Counts records per key; refuses record `failAt` once, as an output refused by the fence would. */
function counting(failAt: number): Operator<number, never> {
  let failed = false;
  return {
    apply(ctx, rec) {
      if (rec.seq === failAt && !failed) {
        failed = true;
        throw new FencedError({ key: "out", message: "this worker's leases may have moved" });
      }
      ctx.state.set(rec.key, rec.hash, (ctx.state.get(rec.key, rec.hash) ?? 0) + 1);
    },
  };
}

const records = (from: number, to: number): Rec[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({
    seq: from + i,
    key: "k",
    hash: keyHash("k"),
    value: {},
    time: Number.NaN,
    watermark: Number.NEGATIVE_INFINITY,
    via: "by-key",
  }));

describe("a batch that failed midway", () => {
  const nats = useNatsServer();

  it("is not checkpointed by a checkpoint that was waiting for its slot", async () => {
    const nc = await nats.connect();
    const publisher = createPublisher(nc);
    const store = await CheckpointStore.open(nc, "failed-batch", publisher);
    const slots = new CheckpointSlots(1);
    const actor = (operator: Operator<number, never>) =>
      new OperatorActor({
        pipelineId: "failed-batch",
        step: "count",
        partition: 0,
        operator,
        store,
        publisher,
        clock: systemClock,
        slots,
        sources: ["src"],
      });

    const first = actor(counting(3));
    await first.recover();
    // Another actor of the worker holds the only checkpoint slot.
    await slots.acquire();
    const checkpoint = first.checkpoint();
    // Records 1 and 2 are applied, record 3's output is refused: the batch fails.
    expect(() => first.process({ source: "src", records: records(1, 5), from: 1, upTo: 5, watermark: Number.NEGATIVE_INFINITY }))
      .toThrow(FencedError);
    expect(first.positions).toEqual({});
    slots.release();
    const outcome = await checkpoint.then(() => "committed", (error) => String(error));

    // The next owner replays records 1-5 onto what was committed: each counted once.
    const next = actor(counting(0));
    await next.recover();
    expect(next.manifest!.positions).toEqual({});
    next.process({ source: "src", records: records(1, 5), from: 1, upTo: 5, watermark: Number.NEGATIVE_INFINITY });
    expect(next.state.get("k", keyHash("k"))).toBe(5);
    expect(outcome).toMatch(/a batch failed midway/);
    await next.checkpoint();
    await publisher.close();
  });
});
