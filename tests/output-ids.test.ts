/**
 * Output ids are the framework's (actors/outputs.ts): named by their cause (a record, a timer, a
 * join's pair) and their place among that cause's outputs, so a replay names them the same and
 * no two causes meet.
 */
import { describe, expect, it } from "vitest";
import { EdgeOutput } from "../actors/edge-output.ts";
import type { Rec } from "../actors/operator.ts";
import { Outputs } from "../actors/outputs.ts";
import { manualClock } from "../src/core/clock.ts";
import type { Publisher } from "../src/log/publisher.ts";

/** A publisher that keeps the Nats-Msg-Ids it was given, per subject. */
function recordingPublisher(): Publisher & { ids: string[] } {
  const ids: string[] = [];
  return {
    ids,
    publish: (subject, _data, opts) => void ids.push(`${subject} ${opts?.msgId ?? ""}`),
    flush: () => Promise.resolve(),
    pending: 0,
    pendingBytes: 0,
    whenPendingBelow: () => Promise.resolve(),
    close: () => Promise.resolve(),
    discardPending: () => undefined,
  };
}

const rec = (seq: number, retract = false): Rec =>
  retract
    ? { seq, key: "k", hash: 0, value: {}, time: 0, watermark: 0, via: "by-k", retract: true }
    : { seq, key: "k", hash: 0, value: {}, time: 0, watermark: 0, via: "by-k" };

describe("output ids", () => {
  it("name each output by its cause and its place among the cause's outputs", () => {
    const publisher = recordingPublisher();
    const edge = new EdgeOutput(publisher, manualClock(), { pipelineId: "shop", partition: 0 });
    const outputs = new Outputs(
      publisher,
      { pipelineId: "shop", streams: [{ id: "out", stream: "o", subject: "o.out" }] },
      edge,
      undefined,
    );
    outputs.forRecord("orders", rec(5));
    outputs.emit({ n: 1 }, undefined, 0);
    outputs.emit({ n: 2 }, undefined, 0);
    outputs.forRecord("orders", rec(5, true)); // the retraction of the same change
    outputs.emit({ n: 3 }, undefined, 0);
    outputs.forTimer("store|1", 60_000, false);
    outputs.emit({ n: 4 }, undefined, 0);
    outputs.forTimer("store|1", 60_000, false); // the same timer again (set again while firing): counting goes on
    outputs.emit({ n: 5 }, undefined, 0);
    outputs.forTimer(42, 1_000, true);
    outputs.emit({ n: 6 }, undefined, 0);
    outputs.forRecord("bids", rec(9));
    outputs.emit({ n: 7 }, undefined, 0, [5, 7]);
    outputs.emit({ n: 8 }, undefined, 0, [6]);
    outputs.emit(undefined, { n: 0 }, 0); // a row gone: nothing to a stream sink
    expect(publisher.ids).toEqual([
      "o.out shop/out/orders/5",
      "o.out shop/out/orders/5/1",
      "o.out shop/out/orders/5-",
      'o.out shop/out/@60000/"store|1"',
      'o.out shop/out/@60000/"store|1"/1',
      "o.out shop/out/@p1000/42",
      "o.out shop/out/5+7",
      "o.out shop/out/6+-",
    ]);
    expect(new Set(publisher.ids).size).toBe(publisher.ids.length);
    expect(outputs.count).toBe(8);
  });
});
