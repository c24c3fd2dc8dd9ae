/**
 * The batch oracle (src/oracle/batch.ts) and streaming agree: fast-check generates orders whose
 * arrival order is shuffled within the watermark bound, publishes them, runs the pipeline with a
 * stop and restart at a random point, and compares every table with the batch evaluation of the
 * same pipeline definition over the same events (aggregates, with and without a state TTL,
 * tumbling, hopping and session windows, steps reading other keyed steps: window rows keyed
 * again, an aggregate over another's updating rows, an interval join's pairs, and a process step
 * whose machines keep event-time timers).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { assign, setup } from "xstate";
import { createPublisher } from "../src/log/publisher.ts";
import { evaluate } from "../src/oracle/batch.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Sale = Schema.Struct({ shop: Schema.String, qty: Schema.Number, ts: Schema.Number });

/** Per shop: a selling streak (sales and quantity) ends after 3 s without a sale, in event time. */
const streak = setup({
  types: { events: {} as { type: "sale"; qty: number }, context: {} as { streaks: number; sales: number; qty: number } },
  delays: { quiet: 3_000 },
}).createMachine({
  initial: "idle",
  context: { streaks: 0, sales: 0, qty: 0 },
  states: {
    idle: {
      on: {
        sale: {
          target: "selling",
          actions: assign(({ context, event }) => ({ streaks: context.streaks + 1, sales: 1, qty: event.qty })),
        },
      },
    },
    selling: {
      after: { quiet: "idle" },
      on: {
        sale: {
          target: "selling",
          reenter: true,
          actions: assign(({ context, event }) => ({ sales: context.sales + 1, qty: context.qty + event.qty })),
        },
      },
    },
  },
});

function sales(id: string, stream: string) {
  const p = pipeline(id, { partitions: 3 });
  const sold = p.source("sales", { stream, schema: Sale, eventTime: (s) => s.ts, maxOutOfOrderMs: 2_000 });
  const byShop = sold.keyBy("by-shop", "shop");
  byShop.aggregate("totals", (a) => ({ n: a.count(), qty: a.sum("qty"), most: a.max("qty") })).toTable(`${id}_totals`);
  byShop.window("ten-s", { size: 10_000 }).aggregate("per-10s", (a) => ({ n: a.count(), qty: a.sum("qty") })).toTable(
    `${id}_per_10s`,
  );
  byShop.window("hop", { size: 20_000, slide: 5_000 }).aggregate("per-20s", (a) => ({ qty: a.sum("qty") })).toTable(
    `${id}_per_20s`,
  );
  byShop.window("visits", { gap: 3_000 }).aggregate("sessions", (a) => ({ n: a.count() })).toTable(`${id}_sessions`);
  byShop.aggregate("recent", (a) => ({ n: a.count(), qty: a.sum("qty") }), { ttlMs: 4_000 }).toTable(`${id}_recent`);
  // Edges: window rows keyed again; an aggregate over another's (updating) rows; a join's pairs.
  byShop.window("five-s", { size: 5_000 }).aggregate("per-5s", (a) => ({ n: a.count() }))
    .keyBy("by-window", "windowStart")
    .aggregate("busiest", (a) => ({ shops: a.count(), most: a.max("n"), top: a.topN(1, "key", "n") }))
    .toTable(`${id}_busiest`);
  byShop.aggregate("per-shop", (a) => ({ n: a.count(), qty: a.sum("qty") }))
    .keyBy("by-parity", (r) => (r.n % 2 === 0 ? "even" : "odd"))
    .aggregate("parity", (a) => ({ shops: a.count(), qty: a.sum("qty"), least: a.min("qty") }))
    .toTable(`${id}_parity`);
  byShop.intervalJoin("follows", sold.keyBy("by-shop-too", "shop"), { lowerMs: 1, upperMs: 3_000 }, (a, b) => ({
    shop: a.shop,
    qty: a.qty * b.qty,
  }))
    .keyBy("follows-by-shop", "shop")
    .aggregate("follow-ups", (a) => ({ n: a.count(), qty: a.sum("qty") }))
    .toTable(`${id}_follows`);
  sold.map("as-event", (s) => ({ type: "sale" as const, ...s })).keyBy("by-shop-event", "shop").process("streaks", streak)
    .toTable(`${id}_streaks`);
  return p;
}

const byRow = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  String(a.key).localeCompare(String(b.key)) || Number(a.windowStart ?? 0) - Number(b.windowStart ?? 0);

describe("streaming equals the batch oracle", () => {
  const nats = useNatsServer();

  it("for random orders shuffled within the watermark bound, across a stop at a random point", { timeout: 120_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    let run = 0;
    let streaksEnded = false;
    const sale = fc.record({
      shop: fc.constantFrom("a", "b", "c", "d"),
      qty: fc.integer({ min: 1, max: 5 }),
      gapMs: fc.integer({ min: 0, max: 1_500 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(sale, { minLength: 20, maxLength: 300 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 0.1, max: 0.9, noNaN: true }),
        async (drafts, shuffleSeed, stopAt) => {
          run++;
          const id = `prop${run}`;
          const stream = `sales_${run}`;
          await jsm.streams.add({ name: stream, subjects: [stream] });
          // Event times grow by the drafted gaps; arrival swaps neighbours within 1.5 s of event time.
          let t = 1_700_000_000_000;
          const timed = drafts.map((d) => ({ shop: d.shop, qty: d.qty, ts: t += d.gapMs }));
          let seed = shuffleSeed;
          for (let i = 1; i < timed.length; i++) {
            seed = (seed * 1103515245 + 12345) % 2147483648;
            if (seed % 3 === 0 && timed[i]!.ts - timed[i - 1]!.ts <= 1_500) [timed[i - 1], timed[i]] = [timed[i]!, timed[i - 1]!];
          }
          const publisher = createPublisher(nc);
          const encoder = new TextEncoder();
          for (const s of timed) publisher.publish(stream, encoder.encode(JSON.stringify(s)));
          await publisher.close();

          const half = Math.max(1, Math.floor(timed.length * stopAt));
          const first = await Worker.start(nc, sales(id, stream), { checkpointMs: 20, maxBatch: 7 });
          await waitFor(() => first.committedPosition("sales") >= half, { timeoutMs: 20_000, message: "first part" });
          await first.stop();
          const second = await Worker.start(nc, sales(id, stream), { checkpointMs: 20 });
          await waitFor(async () => Object.values(await second.lag()).every((n) => n === 0), {
            timeoutMs: 20_000,
            message: "caught up",
          });
          await second.stop();

          const batch = evaluate(sales(id, stream), { sales: timed });
          expect(batch.late).toEqual([]);
          expect(batch.tables[`${id}_totals`]!.length).toBeGreaterThan(0);
          expect(batch.tables[`${id}_per_10s`]!.length + batch.tables[`${id}_sessions`]!.length).toBeGreaterThan(0);
          const streaks = batch.tables[`${id}_streaks`] as { context: { streaks: number } }[];
          if (streaks.some((r) => r.context.streaks > 1)) streaksEnded = true;
          for (const table of ["totals", "per_10s", "per_20s", "sessions", "recent", "busiest", "parity", "follows", "streaks"]) {
            const name = `${id}_${table}`;
            const streamed = await readTable<Record<string, unknown>>(nc, name);
            expect(streamed.sort(byRow)).toEqual((batch.tables[name] ?? []).sort(byRow));
          }
        },
      ),
      { numRuns: 6, seed: 20261125 },
    );
    expect(streaksEnded).toBe(true); // event-time timers fired
  });
});
