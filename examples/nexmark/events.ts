/**
 * The Nexmark events: an online auction's people, auctions and bids, as effect Schemas. Field
 * names follow the Nexmark Flink model (nexmark/nexmark, `nexmark-flink/.../model`), except that
 * times (`dateTime`, `expires`) are epoch milliseconds, so that they window without conversion and
 * load into DuckDB as BIGINT. Ids and prices are integers (prices in cents).
 *
 * Each event carries its `type`, so the three form one discriminated union (`NexmarkEvent`); on
 * JetStream each kind has its own subject (see publish.ts), and a pipeline's source picks one
 * kind with its subject filter and its schema.
 *
 * Not modelled: the bid's `channel` and `url` of later Nexmark versions (no query here reads them).
 *
 * @example
 * const bid: Bid = { type: "bid", auction: 1000, bidder: 1001, price: 4200, dateTime: 1704067200000, extra: "" };
 * Schema.decodeUnknownSync(Bid)(bid);
 */
import { Schema } from "effect";

export const Person = Schema.Struct({
  type: Schema.Literal("person"),
  id: Schema.Int,
  name: Schema.String,
  emailAddress: Schema.String,
  creditCard: Schema.String,
  city: Schema.String,
  state: Schema.String,
  /** When the person registered: epoch ms. */
  dateTime: Schema.Int,
  extra: Schema.String,
});
export type Person = typeof Person.Type;

export const Auction = Schema.Struct({
  type: Schema.Literal("auction"),
  id: Schema.Int,
  itemName: Schema.String,
  description: Schema.String,
  initialBid: Schema.Int,
  reserve: Schema.Int,
  /** When the auction opened: epoch ms. */
  dateTime: Schema.Int,
  /** When it closes: epoch ms, after `dateTime`. */
  expires: Schema.Int,
  /** A person's id. */
  seller: Schema.Int,
  category: Schema.Int,
  extra: Schema.String,
});
export type Auction = typeof Auction.Type;

export const Bid = Schema.Struct({
  type: Schema.Literal("bid"),
  /** An auction's id. */
  auction: Schema.Int,
  /** A person's id. */
  bidder: Schema.Int,
  /** In cents. */
  price: Schema.Int,
  /** When the bid was placed: epoch ms. */
  dateTime: Schema.Int,
  extra: Schema.String,
});
export type Bid = typeof Bid.Type;

export const NexmarkEvent = Schema.Union(Person, Auction, Bid);
export type NexmarkEvent = typeof NexmarkEvent.Type;
export type NexmarkEventType = NexmarkEvent["type"];
