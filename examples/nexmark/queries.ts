/**
 * The Nexmark queries as Eddy pipelines, over the events of publish.ts (a stream with a subject
 * per kind). Each reads only the bids; every step is the query's definition, nothing is tuned per
 * run. Window sizes are Nexmark's (Flink's SQL): q5 a 10 s window every 2 s, q7 10 s tumbling;
 * tests pass smaller ones. Their DuckDB SQL twins are in sql.ts.
 *
 * - q0 passthrough: every bid, unchanged, to stream `nexmark_q0`, in record batches (many bids
 *   to a message: src/log/record-batch.ts).
 * - q1 currency conversion: each bid's price in euros (0.908 * dollars), to `nexmark_q1`, in
 *   record batches.
 * - q2 selection: the auction and price of bids on auctions whose id is a multiple of 123, to
 *   `nexmark_q2`.
 * - q5 hot items: per hopping window, the auctions with the most bids (every one of them when
 *   several tie), and that count; table `nexmark_q5`. All bids go to one key (the windows are
 *   global), through the `hotItems` aggregate.
 * - q7 highest bid: per tumbling window, the bids with the highest price (all of them when several
 *   tie); table `nexmark_q7`. One key; a `reduce` that keeps the highest bids so far.
 *
 * - q3 local item suggestion: auctions in category 10 joined with their sellers from Oregon, Idaho
 *   or California (a regular join: both sides kept), to stream `nexmark_q3`.
 * - q4 average closing price per category: each bid joined with its auction while the auction is
 *   open (an interval join: the auction at most the longest auction length before the bid), the
 *   highest price per auction, then the average of those per category, which follows every new
 *   maximum by retracting the auction's previous one; table `nexmark_q4`.
 * - q8 new users: persons who opened an auction in the tumbling window they registered in (a semi
 *   window join of the persons with the auctions keyed by seller), each once, when its window
 *   closes; stream `nexmark_q8` (append-only, as Nexmark's q8 is: a person registers in one
 *   window, so no row is ever updated).
 *
 * @example
 * await publishNexmark(nc, { seed: 1, count: 100_000 });
 * const worker = await Worker.start(nc, q5());
 * // ... once worker.committedPosition("bids") reaches the last bid: readTable(nc, "nexmark_q5")
 */
import { type Pipeline, pipeline, type Stream } from "@eddy/eddy";
import type { Schema } from "effect";
import { Auction, Bid, type NexmarkEventType, Person } from "./events.ts";
import { maxAuctionMs, maxDisorderMs } from "./generator.ts";
import { hotItems } from "./hot-items.ts";
import { nexmarkStream, nexmarkSubject } from "./publish.ts";

export interface QueryOptions {
  /** The stream the events are in. Default `nexmark`. */
  readonly stream?: string;
  /** The sources' bounded out-of-orderness. Default: the generator's bound at its defaults. */
  readonly maxOutOfOrderMs?: number;
  /** q5: window size and slide, ms. Default 10,000 and 2,000. */
  readonly windowMs?: number;
  readonly slideMs?: number;
  /** q4: the longest an auction is open. Default: the generator's at its defaults. */
  readonly maxAuctionMs?: number;
}

export type QueryName = "q0" | "q1" | "q2" | "q3" | "q4" | "q5" | "q7" | "q8";

/** The output of each query: a stream or a result table. */
export const queryOutputs = {
  q0: { stream: "nexmark_q0" },
  q1: { stream: "nexmark_q1" },
  q2: { stream: "nexmark_q2" },
  q3: { stream: "nexmark_q3" },
  q4: { table: "nexmark_q4" },
  q8: { stream: "nexmark_q8" },
  q5: { table: "nexmark_q5" },
  q7: { table: "nexmark_q7" },
} as const;

/** Dollars to euros, as Nexmark q1 has it. */
export const EUROS_PER_DOLLAR = 0.908;
/** q2 keeps bids on auctions whose id is a multiple of this. */
export const Q2_AUCTION_MODULUS = 123;

/** One kind of event of the Nexmark stream as a source (its subject; event time: `dateTime`). */
function events<T extends { readonly dateTime: number }, I>(
  p: Pipeline,
  id: string,
  kind: NexmarkEventType,
  schema: Schema.Schema<T, I>,
  options: QueryOptions,
): Stream<T> {
  const stream = options.stream ?? nexmarkStream;
  return p.source(id, {
    stream,
    subject: nexmarkSubject(kind, stream),
    schema,
    eventTime: (e) => e.dateTime,
    maxOutOfOrderMs: options.maxOutOfOrderMs ?? maxDisorderMs({ seed: 0, count: 0 }),
  });
}

const bids = (p: Pipeline, options: QueryOptions) => events(p, "bids", "bid", Bid, options);
const auctions = (p: Pipeline, options: QueryOptions) => events(p, "auctions", "auction", Auction, options);
const persons = (p: Pipeline, options: QueryOptions) => events(p, "persons", "person", Person, options);

/** q3: local item suggestion. */
export function q3(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q3", { partitions: 4 });
  const sellers = persons(p, options)
    .filter("western", (x) => x.state === "OR" || x.state === "ID" || x.state === "CA")
    .keyBy("person-by-id", "id");
  auctions(p, options)
    .filter("category-10", (a) => a.category === 10)
    .keyBy("auction-by-seller", "seller")
    .join("with-seller", sellers, (a, x) => ({ name: x.name, city: x.city, state: x.state, id: a.id }))
    .toStream("q3-out", { stream: queryOutputs.q3.stream });
  return p;
}

/** q4: average closing price per category. */
export function q4(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q4", { partitions: 4 });
  const longest = options.maxAuctionMs ?? maxAuctionMs({ seed: 0, count: 0 });
  const open = auctions(p, options).keyBy("auction-by-id", "id");
  bids(p, options)
    .keyBy("bid-by-auction", "auction")
    .intervalJoin("bid-auction", open, { lowerMs: -longest, upperMs: 0 }, (b, a) => ({
      auction: a.id,
      category: a.category,
      price: b.price,
      placed: b.dateTime,
      expires: a.expires,
    }))
    .filter("while-open", (x) => x.placed <= x.expires)
    .keyBy("by-auction", "auction")
    .aggregate("closing-price", (a) => ({ category: a.reduce(0, (_, x) => x.category), final: a.max("price") }))
    .keyBy("by-category", "category")
    .aggregate("average-closing-price", (a) => ({ avgPrice: a.avg("final") }))
    .toTable(queryOutputs.q4.table);
  return p;
}

/**
 * q8: monitor new users. The SQL (Flink's, and sql.ts) reduces the auctions to one row per seller
 * and window before it joins, so that a person meets at most one row per window, not every
 * auction a busy seller opened in it. A semi window join does that in the join itself: it keeps
 * only whether a seller opened an auction in a window, not the auctions, and reads the auctions
 * keyed by seller directly (no counting step, and no internal stream between it and the join).
 * A person is taken to the join as the row the query reports (the SQL's projection), so the join
 * holds that, not the whole event. The join's outputs are the query's result, written to a
 * stream as they come (Flink's q8 sends them to its sink); one partition, as the other
 * single-process queries (q0-q2, q5, q7) have: partitions are the unit of scaling out, and in one
 * process each one more only adds actors and checkpoints.
 */
export function q8(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q8", { partitions: 1 });
  const size = options.windowMs ?? 10_000;
  const sellers = auctions(p, options).keyBy("auction-by-seller", "seller");
  persons(p, options)
    .map("new-user", (x) => ({ id: x.id, name: x.name, windowStart: Math.floor(x.dateTime / size) * size }))
    .keyBy("person-by-id", "id")
    .windowJoin("opened-auction", sellers, { size, kind: "semi" }, (x) => x)
    .toStream("q8-out", { stream: queryOutputs.q8.stream });
  return p;
}

/** q0: passthrough. */
export function q0(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q0", { partitions: 1 });
  bids(p, options).toStream("q0-out", { stream: queryOutputs.q0.stream, batched: true });
  return p;
}

/** q1: currency conversion. */
export function q1(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q1", { partitions: 1 });
  bids(p, options)
    .map("to-euros", (b) => ({
      auction: b.auction,
      bidder: b.bidder,
      price: EUROS_PER_DOLLAR * b.price,
      dateTime: b.dateTime,
      extra: b.extra,
    }))
    .toStream("q1-out", { stream: queryOutputs.q1.stream, batched: true });
  return p;
}

/** q2: selection. */
export function q2(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q2", { partitions: 1 });
  bids(p, options)
    .filter("some-auctions", (b) => b.auction % Q2_AUCTION_MODULUS === 0)
    .map("auction-price", (b) => ({ auction: b.auction, price: b.price }))
    .toStream("q2-out", { stream: queryOutputs.q2.stream });
  return p;
}

/** q5: hot items. */
export function q5(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q5", { partitions: 1 });
  bids(p, options)
    .keyBy("all-bids", () => 0)
    .window("hop", { size: options.windowMs ?? 10_000, slide: options.slideMs ?? 2_000 })
    .aggregate("hot-auctions", () => ({ hottest: hotItems<Bid>((b) => b.auction) }))
    .toTable(queryOutputs.q5.table);
  return p;
}

/** The part of a bid q7 reports. */
export interface HighBid {
  readonly auction: number;
  readonly bidder: number;
  readonly price: number;
  readonly dateTime: number;
}

/** q7: highest bid. */
export function q7(options: QueryOptions = {}): Pipeline {
  const p = pipeline("nexmark-q7", { partitions: 1 });
  bids(p, options)
    .keyBy("all-bids", () => 0)
    .window("tumble", { size: options.windowMs ?? 10_000 })
    .aggregate("highest-bid", (a) => ({
      highest: a.reduce<{ price: number; bids: HighBid[] }>({ price: -1, bids: [] }, (acc, b) => {
        if (b.price < acc.price) return acc;
        const bid = { auction: b.auction, bidder: b.bidder, price: b.price, dateTime: b.dateTime };
        return { price: b.price, bids: b.price === acc.price ? [...acc.bids, bid] : [bid] };
      }),
    }))
    .toTable(queryOutputs.q7.table);
  return p;
}

export const queries: Readonly<Record<QueryName, (options?: QueryOptions) => Pipeline>> = { q0, q1, q2, q3, q4, q5, q7, q8 };
