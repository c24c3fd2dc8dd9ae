/**
 * The Nexmark generator, following the rules of the reference generator (Beam's and Flink's
 * `NexmarkGenerator` / `GeneratorConfig` with its Person, Auction, Bid and Price generators),
 * seeded: the same config gives the same events, byte for byte.
 *
 * - Event number n has event id `adjusted(n)`; the id decides the kind: of every 50 ids, 1 is a
 *   person, 3 are auctions, 46 are bids (`proportions`).
 * - Ids follow from the event id, never from a counter, so a bid can name the auctions and people
 *   generated before it: the last auction (person) id is derived from the event id alone.
 * - Bids: with probability 1 - 1/hotAuctionRatio the bid is for the "hot" auction (the first of the
 *   current batch of 100 auctions), else for a random auction among the last `numInFlightAuctions`
 *   plus a lead of 10 not yet created; the bidder likewise is hot (second person of the current
 *   batch of 100) with probability 1 - 1/hotBiddersRatio, else one of the last `numActivePeople`
 *   plus a lead of 10.
 * - Auctions: seller hot (first person of the current batch of 100) with probability
 *   1 - 1/hotSellersRatio; category 10..14; reserve = initial bid + a price; `expires` is the
 *   auction's time plus a random length averaging the time it takes to open `numInFlightAuctions`
 *   more auctions.
 * - Prices: round(10^(6u) * 100) cents, u uniform in [0, 1).
 * - People: names, emails, credit cards, and a city and state from the spec's short US lists.
 * - `extra` pads each event to the spec's average size (person 200, auction 500, bid 100 bytes).
 * - Time: event n is due at `baseTime + n / eventsPerSecond`; its time is that of its adjusted
 *   number: within each group of `outOfOrderGroupSize` events the numbers are permuted
 *   (`base + (n * 953) mod size`), which is the spec's bounded disorder. `maxDisorderMs(config)`
 *   bounds how far an event's time can be behind any event generated before it.
 *
 * The random source is mulberry32, not java.util.Random: the rules are the reference's, the
 * values are not the same as Java's.
 *
 * @example
 * const events = [...generateNexmark({ seed: 1, count: 1000 })];
 * events.filter((e) => e.type === "bid").length; // 920
 */
import { mulberry32 } from "../coffee-shop/orders.ts";
import type { Auction, Bid, NexmarkEvent, Person } from "./events.ts";

export interface NexmarkConfig {
  readonly seed: number;
  /** Events to generate. */
  readonly count: number;
  /** Event time of event 0, epoch ms. Default 2024-01-01T00:00:00Z (fixed: output is deterministic). */
  readonly baseTime?: number;
  /** Events per second of event time (the spec's firstEventRate). Default 10,000. */
  readonly eventsPerSecond?: number;
  /** Events whose times are shuffled among themselves; 1 = in order. Default 100. */
  readonly outOfOrderGroupSize?: number;
  /** Default 2: half the bids go to the hot auction. */
  readonly hotAuctionRatio?: number;
  /** Default 4. */
  readonly hotSellersRatio?: number;
  /** Default 4. */
  readonly hotBiddersRatio?: number;
  /** Default 100. */
  readonly numInFlightAuctions?: number;
  /** Default 1000. */
  readonly numActivePeople?: number;
}

/** Of every 50 event ids: 1 person, 3 auctions, 46 bids. */
export const proportions = { person: 1, auction: 3, bid: 46 } as const;
const TOTAL = proportions.person + proportions.auction + proportions.bid;

export const FIRST_PERSON_ID = 1000;
export const FIRST_AUCTION_ID = 1000;
export const FIRST_CATEGORY_ID = 10;
const NUM_CATEGORIES = 5;
/** Ids a bid or auction may name ahead of the last one created. */
const ID_LEAD = 10;
/** Hot auctions, bidders and sellers are the first (second) of each batch of this many. */
const HOT_BATCH = 100;

const US_STATES = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES = [
  "Phoenix",
  "Los Angeles",
  "San Francisco",
  "Boise",
  "Portland",
  "Bend",
  "Redmond",
  "Seattle",
  "Kent",
  "Cheyenne",
];
const FIRST_NAMES = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];

/** 2024-01-01T00:00:00Z. */
export const defaultBaseTime = Date.UTC(2024, 0, 1);

interface Resolved {
  readonly baseTime: number;
  readonly delayUs: number;
  readonly groupSize: number;
  readonly hotAuctionRatio: number;
  readonly hotSellersRatio: number;
  readonly hotBiddersRatio: number;
  readonly numInFlightAuctions: number;
  readonly numActivePeople: number;
}

function resolve(config: NexmarkConfig): Resolved {
  const groupSize = config.outOfOrderGroupSize ?? 100;
  if (!(Number.isInteger(groupSize) && groupSize >= 1 && groupSize % 953 !== 0)) {
    throw new Error(`outOfOrderGroupSize must be a positive integer, not a multiple of 953; got ${groupSize}`);
  }
  return {
    baseTime: config.baseTime ?? defaultBaseTime,
    delayUs: 1_000_000 / (config.eventsPerSecond ?? 10_000),
    groupSize,
    hotAuctionRatio: config.hotAuctionRatio ?? 2,
    hotSellersRatio: config.hotSellersRatio ?? 4,
    hotBiddersRatio: config.hotBiddersRatio ?? 4,
    numInFlightAuctions: config.numInFlightAuctions ?? 100,
    numActivePeople: config.numActivePeople ?? 1000,
  };
}

/**
 * How far an event's time can lie behind the time of any event generated before it: the time
 * spanned by one out-of-order group, plus a millisecond of rounding. Use it as the sources'
 * `maxOutOfOrderMs` and no event is late.
 */
/** The longest an auction of this configuration can be open (`expires - dateTime`), ms. */
export function maxAuctionMs(config: NexmarkConfig): number {
  const c = resolve(config);
  const ahead = Math.floor((c.numInFlightAuctions * TOTAL) / proportions.auction);
  return 2 * (Math.ceil((ahead * c.delayUs) / 1000) + 1) + 1;
}

export function maxDisorderMs(config: NexmarkConfig): number {
  const c = resolve(config);
  return Math.ceil(((c.groupSize - 1) * c.delayUs) / 1000) + 1;
}

/** Generate `count` events, in the order they are due. */
export function* generateNexmark(config: NexmarkConfig): Generator<NexmarkEvent> {
  const c = resolve(config);
  const random = mulberry32(config.seed);
  const int = (n: number) => Math.floor(random() * n);
  const time = (eventNumber: number) => c.baseTime + Math.floor(Math.floor(eventNumber * c.delayUs) / 1000);
  const adjusted = (n: number) => Math.floor(n / c.groupSize) * c.groupSize + ((n * 953) % c.groupSize);

  const string = (maxLength: number) => {
    let s = "";
    for (let len = 3 + int(maxLength - 3); len > 0; len--) s += int(13) === 0 ? " " : String.fromCharCode(97 + int(26));
    return s.trim();
  };
  const exactString = (length: number) => {
    let s = "";
    for (let i = 0; i < length; i++) s += String.fromCharCode(97 + int(26));
    return s;
  };
  /** Padding so that an event of `size` bytes so far averages `average` bytes. */
  const extra = (size: number, average: number) => {
    if (size > average) return "";
    const room = average - size;
    const delta = Math.round(room * 0.2);
    return exactString(room - delta + (delta === 0 ? 0 : int(2 * delta)));
  };
  const price = () => Math.round(10 ** (random() * 6) * 100);

  const randomPerson = (eventId: number) => {
    const people = lastPersonId(eventId) + 1;
    const active = Math.min(people, c.numActivePeople);
    return people - active + int(active + ID_LEAD);
  };
  const randomAuction = (eventId: number) => {
    const last = lastAuctionId(eventId);
    const first = Math.max(last - c.numInFlightAuctions, 0);
    return first + int(last - first + 1 + ID_LEAD);
  };

  for (let n = 0; n < config.count; n++) {
    const eventId = adjusted(n);
    const dateTime = time(eventId);
    const kind = eventId % TOTAL;
    if (kind < proportions.person) {
      const name = `${FIRST_NAMES[int(FIRST_NAMES.length)]} ${LAST_NAMES[int(LAST_NAMES.length)]}`;
      const emailAddress = `${string(7)}@${string(5)}.com`;
      const creditCard = [0, 1, 2, 3].map(() => String(int(10_000)).padStart(4, "0")).join(" ");
      const city = US_CITIES[int(US_CITIES.length)]!;
      const state = US_STATES[int(US_STATES.length)]!;
      const size = 8 + name.length + emailAddress.length + creditCard.length + city.length + state.length;
      const person: Person = {
        type: "person",
        id: lastPersonId(eventId) + FIRST_PERSON_ID,
        name,
        emailAddress,
        creditCard,
        city,
        state,
        dateTime,
        extra: extra(size, 200),
      };
      yield person;
    } else if (kind < proportions.person + proportions.auction) {
      const seller = int(c.hotSellersRatio) > 0
        ? Math.floor(lastPersonId(eventId) / HOT_BATCH) * HOT_BATCH
        : randomPerson(eventId);
      const category = FIRST_CATEGORY_ID + int(NUM_CATEGORIES);
      const initialBid = price();
      // The auction lasts on average as long as it takes to open numInFlightAuctions more.
      const ahead = Math.floor((c.numInFlightAuctions * TOTAL) / proportions.auction);
      const horizonMs = time(eventId + ahead) - dateTime;
      const expires = dateTime + 1 + int(Math.max(horizonMs * 2, 1));
      const itemName = string(20);
      const description = string(100);
      const reserve = initialBid + price();
      const auction: Auction = {
        type: "auction",
        id: lastAuctionId(eventId) + FIRST_AUCTION_ID,
        itemName,
        description,
        initialBid,
        reserve,
        dateTime,
        expires,
        seller: seller + FIRST_PERSON_ID,
        category,
        extra: extra(8 + itemName.length + description.length + 40, 500),
      };
      yield auction;
    } else {
      const auction = int(c.hotAuctionRatio) > 0
        ? Math.floor(lastAuctionId(eventId) / HOT_BATCH) * HOT_BATCH
        : randomAuction(eventId);
      const bidder = int(c.hotBiddersRatio) > 0
        ? Math.floor(lastPersonId(eventId) / HOT_BATCH) * HOT_BATCH + 1
        : randomPerson(eventId);
      const bid: Bid = {
        type: "bid",
        auction: auction + FIRST_AUCTION_ID,
        bidder: bidder + FIRST_PERSON_ID,
        price: price(),
        dateTime,
        extra: extra(32, 100),
      };
      yield bid;
    }
  }
}

/** The last person id (from 0) created up to event id `eventId` (this one, if it is a person). */
function lastPersonId(eventId: number): number {
  const epoch = Math.floor(eventId / TOTAL);
  const offset = Math.min(eventId % TOTAL, proportions.person - 1);
  return epoch * proportions.person + offset;
}

/** The last auction id (from 0) created up to event id `eventId` (this one, if it is an auction). */
function lastAuctionId(eventId: number): number {
  let epoch = Math.floor(eventId / TOTAL);
  let offset = eventId % TOTAL;
  if (offset < proportions.person) {
    epoch--;
    offset = proportions.auction - 1;
  } else if (offset >= proportions.person + proportions.auction) offset = proportions.auction - 1;
  else offset -= proportions.person;
  return epoch * proportions.auction + offset;
}
