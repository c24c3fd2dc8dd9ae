/**
 * Nexmark: the generator follows the specification's proportions, hot ratios and id rules, and is
 * deterministic; each query's Eddy pipeline, run by a Worker over the events on a real
 * nats-server, gives exactly what DuckDB's SQL gives over the same events.
 *
 * q3, q4 and q8 join two kinds of events: their SQL is also checked against the queries' plain
 * definitions in TypeScript, and their pipelines (a regular, an interval and a window join, with
 * an aggregate over another's rows in q4) against the SQL.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Auction, Bid, NexmarkEvent, Person } from "../examples/nexmark/events.ts";
import {
  FIRST_AUCTION_ID,
  FIRST_PERSON_ID,
  generateNexmark,
  maxAuctionMs,
  maxDisorderMs,
  proportions,
} from "../examples/nexmark/generator.ts";
import { nexmarkSubject, publishNexmark } from "../examples/nexmark/publish.ts";
import { lastSequence } from "../src/log/streams.ts";
import { type HighBid, q0, q1, q2, q3, q4, q5, q7, q8, type QueryOptions, queryOutputs } from "../examples/nexmark/queries.ts";
import { type HotItems, hotItems } from "../examples/nexmark/hot-items.ts";
import { q0Sql, q1Sql, q2Sql, q3Sql, q4Sql, q5Sql, q7Sql, q8Sql } from "../examples/nexmark/sql.ts";
import type { Pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { type NexmarkDuckDb, nexmarkDuckDb } from "./support/nexmark-duckdb.ts";

const byType = <K extends NexmarkEvent["type"]>(events: readonly NexmarkEvent[], type: K) =>
  events.filter((e): e is Extract<NexmarkEvent, { type: K }> => e.type === type);

describe("the Nexmark generator", { timeout: 20_000 }, () => {
  const config = { seed: 7, count: 10_000 };
  const events = [...generateNexmark(config)];
  const persons = byType(events, "person");
  const auctions = byType(events, "auction");
  const bids = byType(events, "bid");

  it("is deterministic: the same seed gives the same events, another seed others", () => {
    expect(JSON.stringify([...generateNexmark(config)])).toBe(JSON.stringify(events));
    const other = [...generateNexmark({ ...config, seed: 8 })];
    expect(other.map((e) => e.type)).toEqual(events.map((e) => e.type)); // kinds follow from ids alone
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(events));
  });

  it("makes persons, auctions and bids 1:3:46, with ids in sequence", () => {
    const epochs = config.count / 50;
    expect([persons.length, auctions.length, bids.length]).toEqual([
      epochs * proportions.person,
      epochs * proportions.auction,
      epochs * proportions.bid,
    ]);
    expect(persons.map((p) => p.id).sort((a, b) => a - b)).toEqual(persons.map((_, i) => FIRST_PERSON_ID + i));
    expect(auctions.map((a) => a.id).sort((a, b) => a - b)).toEqual(auctions.map((_, i) => FIRST_AUCTION_ID + i));
  });

  it("bids name auctions and people that exist (ahead by at most the spec's lead of 10 ids)", () => {
    const auctionIds = new Set(auctions.map((a) => a.id));
    const personIds = new Set(persons.map((p) => p.id));
    const lastAuction = Math.max(...auctionIds);
    const lastPerson = Math.max(...personIds);
    let maxAuction = FIRST_AUCTION_ID - 1;
    let maxPerson = FIRST_PERSON_ID - 1;
    let existingAuction = 0;
    const wrong: unknown[] = [];
    for (const e of events) {
      if (e.type === "auction") {
        maxAuction = Math.max(maxAuction, e.id);
        const sellerExists = e.seller >= FIRST_PERSON_ID && (personIds.has(e.seller) || e.seller > lastPerson);
        const valid = e.expires > e.dateTime && e.category >= 10 && e.category <= 14 && e.reserve > e.initialBid;
        if (!sellerExists || !valid) wrong.push(e);
      } else if (e.type === "person") maxPerson = Math.max(maxPerson, e.id);
      else {
        // Ahead of the last auction created by at most the lead, plus one out-of-order group.
        const ahead = e.auction > maxAuction + 10 + 100 || e.bidder > maxPerson + 10 + 100;
        const auctionExists = e.auction >= FIRST_AUCTION_ID && (auctionIds.has(e.auction) || e.auction > lastAuction);
        const bidderExists = e.bidder >= FIRST_PERSON_ID && (personIds.has(e.bidder) || e.bidder > lastPerson);
        if (ahead || !auctionExists || !bidderExists) wrong.push(e);
        if (e.auction <= maxAuction) existingAuction++;
      }
    }
    expect(wrong).toEqual([]);
    expect(existingAuction / bids.length).toBeGreaterThan(0.9);
    expect(new Set(persons.map((p) => p.state))).toEqual(new Set(["AZ", "CA", "ID", "OR", "WA", "WY"]));
  });

  it("has hot auctions, bidders and sellers at the default ratios (2, 4, 4)", () => {
    const share = <T>(list: readonly T[], hot: (x: T) => boolean) => list.filter(hot).length / list.length;
    // Hot ones are the first (bidders: the second) of each batch of 100; a random pick lands there 1% of the time.
    expect(share(bids, (b) => (b.auction - FIRST_AUCTION_ID) % 100 === 0)).toBeCloseTo(0.5 + 0.5 * 0.01, 1);
    expect(share(bids, (b) => (b.bidder - FIRST_PERSON_ID) % 100 === 1)).toBeCloseTo(0.75 + 0.25 * 0.01, 1);
    expect(share(auctions, (a) => (a.seller - FIRST_PERSON_ID) % 100 === 0)).toBeCloseTo(0.75 + 0.25 * 0.01, 1);
    const prices = bids.map((b) => b.price);
    expect(Math.min(...prices)).toBeGreaterThanOrEqual(100);
    expect(Math.max(...prices)).toBeLessThanOrEqual(100_000_000);
  });

  it("advances event time at the configured rate with disorder inside maxDisorderMs", () => {
    const bound = maxDisorderMs(config);
    let highest = Number.NEGATIVE_INFINITY;
    let worst = 0;
    for (const e of events) {
      worst = Math.max(worst, highest - e.dateTime);
      highest = Math.max(highest, e.dateTime);
    }
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(bound);
    expect(highest - events[0]!.dateTime).toBe(config.count / 10 - 1); // 10,000 events/s
  });
});

describe("hotItems, q5's aggregate", () => {
  it("returns every item tied at the highest count, ascending, and merges", () => {
    const hot = hotItems<number>((n) => n);
    const fold = (items: number[]) => items.slice(1).reduce((s, n) => hot.add(s, n), hot.init(items[0]!));
    const first = fold([1100, 1228, 1228, 1036, 1100, 1000, -64]);
    expect(hot.result(first)).toEqual({ items: [1100, 1228], count: 2 });
    expect(hot.result(hot.add(first, 1228))).toEqual({ items: [1228], count: 3 });
    expect(hot.result(first)).toEqual({ items: [1100, 1228], count: 2 }); // the state was not changed in place
    expect(hot.result(hot.merge!(first, fold([1036, 1036, -64])))).toEqual({ items: [1036], count: 3 });
    expect(JSON.parse(JSON.stringify(first))).toEqual(first); // checkpointed as JSON
  });
});

describe("the Nexmark queries equal DuckDB's SQL", () => {
  const nats = useNatsServer();
  // 60 s of event time: 6 tumbling 10 s windows, 26 hopping ones.
  const config = { seed: 11, count: 36_000, eventsPerSecond: 600 };
  const events = [...generateNexmark(config)];
  const options: QueryOptions = { maxOutOfOrderMs: maxDisorderMs(config), windowMs: 10_000, slideMs: 2_000 };
  const bidTimes = byType(events, "bid").map((b) => b.dateTime);
  /** The bids' final watermark: what the windows' watermark reaches once every bid is read. */
  const watermark = Math.max(...bidTimes) - options.maxOutOfOrderMs!;
  let nc: NatsConnection;
  let db: NexmarkDuckDb;
  let lastBid: number;

  beforeAll(async () => {
    nc = await nats.connect();
    const published = await publishNexmark(nc, config);
    expect(published.byType.bid).toBe(bidTimes.length);
    lastBid = await lastSequence(nc, "nexmark", nexmarkSubject("bid"));
    db = await nexmarkDuckDb(events);
  }, 60_000);
  afterAll(() => db?.close());

  /** Run a query's pipeline until it has committed the last bid, then stop it. */
  const run = async (p: Pipeline) => {
    const worker = await Worker.start(nc, p, { checkpointMs: 200 });
    await waitFor(() => worker.committedPosition("bids") >= lastBid, { timeoutMs: 40_000, message: `${p.id} caught up` });
    expect(worker.status().reduce((n, a) => n + a.lateEvents + a.deadLetters, 0)).toBe(0);
    await worker.stop();
  };
  /** Run a pipeline until it has committed everything of every source (edges too), then stop it. */
  const runAll = async (p: Pipeline) => {
    const worker = await Worker.start(nc, p, { checkpointMs: 200 });
    await waitFor(async () => Object.values(await worker.lag()).every((n) => n === 0), {
      timeoutMs: 40_000,
      message: `${p.id} caught up`,
    });
    expect(worker.status().reduce((n, a) => n + a.lateEvents + a.deadLetters, 0)).toBe(0);
    await worker.stop();
  };
  /** Rows with only the SQL result's columns. */
  const project = (rows: Record<string, unknown>[], like: Record<string, unknown>[]) =>
    rows.map((r) => Object.fromEntries(Object.keys(like[0] ?? {}).map((k) => [k, r[k]])));

  it("q0 passthrough", { timeout: 60_000 }, async () => {
    await run(q0(options));
    const want = await db.rows(q0Sql);
    const got = await readStreamJson<Bid>(nc, queryOutputs.q0.stream);
    expect(got.length).toBe(bidTimes.length);
    expect(project(got, want)).toEqual(want);
    expect(got[0]!.type).toBe("bid");
  });

  it("q1 currency conversion", { timeout: 60_000 }, async () => {
    await run(q1(options));
    const want = await db.rows(q1Sql);
    const got = await readStreamJson<Record<string, unknown>>(nc, queryOutputs.q1.stream);
    expect(want.length).toBe(bidTimes.length);
    expect(got).toEqual(want);
  });

  it("q2 selection", { timeout: 60_000 }, async () => {
    await run(q2(options));
    const want = await db.rows(q2Sql);
    expect(want.length).toBeGreaterThan(10);
    expect(await readStreamJson(nc, queryOutputs.q2.stream)).toEqual(want);
  });

  it("q5 hot items", { timeout: 60_000 }, async () => {
    await run(q5(options));
    const want = await db.rows(q5Sql({ windowMs: 10_000, slideMs: 2_000, watermark }));
    const table = await readTable<{ windowStart: number; windowEnd: number; hottest: HotItems }>(nc, queryOutputs.q5.table);
    const got = table
      .flatMap((w) =>
        w.hottest.items.map((auction) => ({ windowStart: w.windowStart, windowEnd: w.windowEnd, auction, num: w.hottest.count }))
      )
      .sort((a, b) => a.windowStart - b.windowStart || a.auction - b.auction);
    expect(table.length).toBeGreaterThanOrEqual(20);
    expect(got).toEqual(want);
  });

  it("q7 highest bid", { timeout: 60_000 }, async () => {
    await run(q7(options));
    const want = await db.rows(q7Sql({ windowMs: 10_000, watermark }));
    const table = await readTable<{ windowStart: number; windowEnd: number; highest: { bids: HighBid[] } }>(
      nc,
      queryOutputs.q7.table,
    );
    const got = table
      .flatMap((w) => w.highest.bids.map((b) => ({ windowStart: w.windowStart, windowEnd: w.windowEnd, ...b })))
      .sort((a, b) => a.windowStart - b.windowStart || a.auction - b.auction || a.bidder - b.bidder || a.dateTime - b.dateTime);
    expect(table.length).toBeGreaterThanOrEqual(5);
    expect(project(got, want)).toEqual(want);
  });

  it("eddy gen --nexmark publishes the generator's events", { timeout: 30_000 }, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [resolve("bin/eddy.js"), "gen", "--nexmark", "--stream", "nexmark_cli", "--count", "1000", "--seed", "3"],
      { env: { ...process.env, NATS_URL: nats.url } },
    );
    expect(stdout).toMatch(/published 1000 Nexmark events to nexmark_cli \(20 persons, 60 auctions, 920 bids\)/);
    expect(await readStreamJson(nc, "nexmark_cli")).toEqual([...generateNexmark({ seed: 3, count: 1000 })]);
  });

  describe("q3, q4, q8: the SQL oracle, ready for the join pipelines", () => {
    const persons = byType(events, "person");
    const auctions = byType(events, "auction");
    const bids = byType(events, "bid");
    const personById = new Map(persons.map((p) => [p.id, p]));

    /**
     * Each query's definition in plain TypeScript, until its Eddy pipeline exists: then this
     * becomes "run the pipeline, read its table" (q3 and q4 are updating results: a table).
     */
    const joinQueries: Record<
      string,
      { sql: () => string; expected: () => Record<string, unknown>[]; eddy: () => Promise<Record<string, unknown>[]> }
    > = {
      q3: {
        sql: () => q3Sql,
        eddy: async () => {
          await runAll(q3(options));
          const rows = await readStreamJson<{ id: number }>(nc, queryOutputs.q3.stream);
          return rows.sort((x, y) => x.id - y.id);
        },
        expected: () =>
          auctions
            .filter((a) => a.category === 10)
            .flatMap((a) => {
              const p = personById.get(a.seller);
              return p && ["OR", "ID", "CA"].includes(p.state) ? [{ name: p.name, city: p.city, state: p.state, id: a.id }] : [];
            })
            .sort((x, y) => x.id - y.id),
      },
      q4: {
        sql: () => q4Sql,
        eddy: async () => {
          await runAll(q4({ ...options, maxAuctionMs: maxAuctionMs(config) }));
          const rows = await readTable<{ key: number; avgPrice: number }>(nc, queryOutputs.q4.table);
          return rows.map((r) => ({ category: r.key, avgPrice: r.avgPrice })).sort((x, y) => x.category - y.category);
        },
        expected: () => {
          const auctionById = new Map(auctions.map((a) => [a.id, a]));
          const final = new Map<number, number>();
          for (const b of bids) {
            const a = auctionById.get(b.auction);
            if (a && b.dateTime >= a.dateTime && b.dateTime <= a.expires) {
              final.set(a.id, Math.max(final.get(a.id) ?? 0, b.price));
            }
          }
          const perCategory = new Map<number, number[]>();
          for (const [id, price] of final) {
            const category = auctionById.get(id)!.category;
            perCategory.set(category, [...(perCategory.get(category) ?? []), price]);
          }
          return [...perCategory]
            .sort(([x], [y]) => x - y)
            .map(([category, prices]) => ({ category, avgPrice: prices.reduce((s, p) => s + p, 0) / prices.length }));
        },
      },
      q8: {
        sql: () => q8Sql({ windowMs: 10_000, watermark: q8Watermark(persons, auctions) }),
        eddy: async () => {
          await runAll(q8(options));
          // Each person at most once: a duplicate would show in the comparison.
          const rows = await readStreamJson<{ id: number; name: string; windowStart: number }>(nc, queryOutputs.q8.stream);
          return rows.map(({ id, name, windowStart }) => ({ id, name, windowStart }))
            .sort((x, y) => x.windowStart - y.windowStart || x.id - y.id);
        },
        expected: () => {
          const wm = q8Watermark(persons, auctions);
          const opened = new Set(auctions.map((a) => `${a.seller}/${Math.floor(a.dateTime / 10_000) * 10_000}`));
          const registered = new Map<string, { id: number; name: string; windowStart: number }>();
          for (const p of persons) {
            const windowStart = Math.floor(p.dateTime / 10_000) * 10_000;
            const key = `${p.id}/${windowStart}`;
            if (windowStart + 10_000 <= wm && opened.has(key)) registered.set(key, { id: p.id, name: p.name, windowStart });
          }
          return [...registered.values()].sort((x, y) => x.windowStart - y.windowStart || x.id - y.id);
        },
      },
    };

    for (const [name, q] of Object.entries(joinQueries)) {
      it(`${name}: DuckDB equals the query's definition`, async () => {
        const want = q.expected();
        expect(want.length).toBeGreaterThan(0);
        const got = await db.rows(q.sql());
        if (name === "q4") {
          // Averages: the same up to floating-point summation order.
          expect(got.map((r) => r.category)).toEqual(want.map((r) => r.category));
          got.forEach((r, i) => expect(r.avgPrice as number).toBeCloseTo(want[i]!.avgPrice as number, 6));
        } else expect(got).toEqual(want);
      });
      it(`${name}: the Eddy pipeline equals DuckDB`, { timeout: 60_000 }, async () => {
        const want = await db.rows(q.sql());
        const got = await q.eddy();
        if (name === "q4") {
          // Averages over maxima that were retracted and replaced: equal up to rounding.
          expect(got.map((r) => r.category)).toEqual(want.map((r) => Number(r.category)));
          got.forEach((r, i) => expect(r.avgPrice as number).toBeCloseTo(want[i]!.avgPrice as number, 6));
        } else expect(got).toEqual(want);
      });
    }
    it("no auction is open longer than maxAuctionMs", () => {
      expect(Math.max(...auctions.map((a) => a.expires - a.dateTime))).toBeLessThanOrEqual(maxAuctionMs(config));
    });
  });
});

/** q8's final watermark: the lower of the persons' and the auctions' (each: highest time minus the bound). */
function q8Watermark(persons: readonly Person[], auctions: readonly Auction[]): number {
  const bound = maxDisorderMs({ seed: 11, count: 0, eventsPerSecond: 600 });
  return Math.min(Math.max(...persons.map((p) => p.dateTime)), Math.max(...auctions.map((a) => a.dateTime))) - bound;
}
