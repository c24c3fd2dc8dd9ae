/**
 * The Nexmark cases of scripts/bench.ts (`--cases nexmark`, or `nexmark-q0`, `nexmark-q5`, ...):
 * publishes `--nexmark-events` generated events (seed 1, the spec's default 10,000 events/s of
 * event time) to stream `nexmark`, measures the read ceiling of the bids (the bare ordered
 * consumer of bench-common.ts, filtered to `nexmark.bid`, as every query reads), then runs each
 * query of examples/nexmark/queries.ts in a child worker (scripts/bench-worker.ts `--nexmark`),
 * checkpoints on (default settings), until it has committed the last bid, and checks its output's
 * size. Events/s count the events a query reads (the server selects them by subject: a query
 * reading bids is never delivered a person or an auction).
 *
 * The queries that read no bids (q3 and q8: persons and auctions, 8% of the events) read stream
 * `nexmark_pa` instead: only the persons and auctions of the first `--nexmark-join-events`
 * (default 2,500,000) generated events, seed 1 (the same events as a full stream of that size
 * holds, with the same msg ids), so that they read ~200,000 events rather than ~24,000 and their
 * figure is not a measure of Worker.start and the first checkpoint. Their read ceiling is measured
 * on that stream (`nexmark-ceiling-pa`: the same bare consumer over the persons and auctions, whose
 * JSON is larger than a bid's), and is the denominator of their share of the ceiling.
 *
 * Next to each: the published open-source Flink figure per core (in-job generator, no
 * deserialization) and the targets: at least 60% of the read ceiling for q0, q1, q2 (and q8), at
 * least Flink per core for q5 and q7.
 *
 * @example
 * npx tsx scripts/bench.ts --cases nexmark --nexmark-events 300000
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { NexmarkEvent } from "../examples/nexmark/events.ts";
import { generateNexmark, maxAuctionMs, maxDisorderMs } from "../examples/nexmark/generator.ts";
import { nexmarkStream, nexmarkSubject, publishNexmark } from "../examples/nexmark/publish.ts";
import { recordCountHeader } from "../src/log/record-batch.ts";
import { lastSequence, readStream } from "../src/log/streams.ts";
import { Q2_AUCTION_MODULUS, type QueryName, queryOutputs } from "../examples/nexmark/queries.ts";
import { readTable } from "../src/state/table.ts";
import { cpuSeconds, readCeiling, round } from "./bench-common.ts";

export const nexmarkQueries: readonly QueryName[] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"];

/** The kinds of event each query reads (the server delivers only those). */
const reads: Readonly<Record<QueryName, readonly ("person" | "auction" | "bid")[]>> = {
  q0: ["bid"],
  q1: ["bid"],
  q2: ["bid"],
  q3: ["person", "auction"],
  q4: ["auction", "bid"],
  q5: ["bid"],
  q7: ["bid"],
  q8: ["person", "auction"],
};

/** Open-source Flink on Nexmark, events/s per core (published). */
export const flinkPerCore: Readonly<Record<string, number>> = { q1: 158_000, q2: 175_000, q5: 22_100, q7: 12_300, q8: 146_000 };

/** Queries held to a share of the read ceiling; the others to Flink's per-core figure. */
const ceilingBound = new Set(["q0", "q1", "q2", "q8"]);
const CEILING_TARGET = 0.6;
/** The windows of queries.ts at their defaults. */
const WINDOW_MS = 10_000;
const SLIDE_MS = 2_000;

/** The Nexmark queries `--cases` asks for. */
export function nexmarkWanted(wanted: ReadonlySet<string>): QueryName[] {
  return nexmarkQueries.filter((q) => wanted.has("nexmark") || wanted.has(`nexmark-${q}`));
}

/** What bench.ts's child worker reports, as far as this needs it. */
interface WorkerRun {
  committedMs: number;
  processedMs: number;
  startedMs: number;
  peakRssMb: number;
  cpuSeconds: number;
  maxPollGapMs: number;
}

/** The stream of persons and auctions only, for the queries that read no bids. */
const joinStream = "nexmark_pa";

export interface NexmarkBench {
  readonly nc: NatsConnection;
  readonly serverPid: number;
  readonly events: number;
  /** Events generated for `nexmark_pa` (only persons and auctions among them are published). */
  readonly joinEvents: number;
  readonly log: (line: string) => void;
  readonly runWorker: (
    name: string,
    a: { pipeline: string; stream: string; subject: string; table: string; query: string },
  ) => Promise<WorkerRun>;
}

export async function benchNexmark(
  b: NexmarkBench,
  queries: readonly QueryName[],
): Promise<Record<string, Record<string, unknown>>> {
  const cases: Record<string, Record<string, unknown>> = {};
  const stream = nexmarkStream;
  const subject = nexmarkSubject("bid");
  const config = { seed: 1, count: b.events };
  const t0 = performance.now();
  const { byType } = await publishNexmark(b.nc, config);
  const publishRate = b.events / ((performance.now() - t0) / 1000);
  b.log(
    `published ${
      b.events.toLocaleString("en")
    } Nexmark events (${byType.person} persons, ${byType.auction} auctions, ${byType.bid} bids) at ${
      Math.round(publishRate).toLocaleString("en")
    }/s`,
  );
  const lastBid = await lastSequence(b.nc, stream, subject);
  cases["nexmark-ceiling"] = {
    ...(await readCeiling(b.nc, { stream, subject, last: lastBid, serverPid: b.serverPid, log: b.log })),
    note: `ordered consumer filtered to ${subject} (what every query reads), JSON.parse only`,
  };
  const expected = expectedOutputs(generateNexmark(config), maxDisorderMs(config), true);
  const noBids = queries.filter((q) => !reads[q].includes("bid"));
  const joinConfig = { seed: 1, count: b.joinEvents };
  let joinByType = byType;
  let joinExpected = expected;
  if (noBids.length > 0) {
    const t1 = performance.now();
    const published: NexmarkEvent[] = [];
    joinByType = (await publishNexmark(b.nc, {
      ...joinConfig,
      stream: joinStream,
      kinds: ["person", "auction"],
      onEvent: (e) => published.push(e),
    })).byType;
    b.log(
      `published the ${joinByType.person} persons and ${joinByType.auction} auctions of ${
        b.joinEvents.toLocaleString("en")
      } generated Nexmark events to ${joinStream} in ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
    joinExpected = expectedOutputs(published, maxDisorderMs(joinConfig), false);
    cases["nexmark-ceiling-pa"] = {
      ...(await readCeiling(b.nc, {
        stream: joinStream,
        last: await lastSequence(b.nc, joinStream),
        serverPid: b.serverPid,
        log: b.log,
      })),
      note: `ordered consumer over ${joinStream} (persons and auctions only: what q3 and q8 read), JSON.parse only`,
    };
  }
  for (const q of queries) {
    const id = `nexmark-${q}`;
    const scpu0 = cpuSeconds(b.serverPid);
    const joins = noBids.includes(q);
    const r = await b.runWorker(id, {
      pipeline: id,
      stream: joins ? joinStream : stream,
      subject: joins ? nexmarkSubject("auction", joinStream) : subject,
      table: "",
      query: q,
    });
    const output = queryOutputs[q];
    const produced = "stream" in output ? await recordCount(b.nc, output.stream) : (await readTable(b.nc, output.table)).length;
    const want = (joins ? joinExpected : expected)[q];
    if (produced !== want) throw new Error(`${id}: ${produced} output rows/messages, expected ${want}`);
    const secs = r.committedMs / 1000;
    const events = reads[q].reduce((n, kind) => n + (joins ? joinByType : byType)[kind], 0);
    cases[id] = {
      eventsPerSec: round(events / secs),
      seconds: round(secs, 2),
      peakRssMb: r.peakRssMb,
      events,
      reads: reads[q].join("+"),
      stream: joins ? joinStream : stream,
      processedEventsPerSec: round(events / (r.processedMs / 1000)),
      startMs: r.startedMs,
      workerCpuPct: round((r.cpuSeconds / secs) * 100),
      serverCpuPct: round(((cpuSeconds(b.serverPid) - scpu0) / secs) * 100),
      maxEventLoopBlockMs: r.maxPollGapMs,
      verified: `${produced} ${"stream" in output ? "records" : "rows"}, as expected`,
      note:
        "child process running the worker bundled; Worker.start to every source (and edge) committed to its end, default checkpoint settings (1 s / 100k events); events = the events the query reads",
    };
    b.log(
      `${id}: ${Math.round(events / secs).toLocaleString("en")} events/s committed (${
        secs.toFixed(2)
      } s, peak rss ${r.peakRssMb} MB)`,
    );
  }
  return cases;
}

/** The records a stream holds: a record batch's count (its header), or one per message. */
async function recordCount(nc: NatsConnection, stream: string): Promise<number> {
  let records = 0;
  await readStream(nc, stream, { headers_only: true }, (m) => (records += Number(m.headers?.get(recordCountHeader) || 1)));
  return records;
}

/**
 * What each query must produce over the generated events: messages, or closed windows. Without
 * `withBids` (a stream of persons and auctions only), only q3's and q8's figures mean anything.
 */
function expectedOutputs(generated: Iterable<NexmarkEvent>, bound: number, withBids: boolean): Record<QueryName, number> {
  let bids = 0;
  let selected = 0;
  let maxTime = Number.NEGATIVE_INFINITY;
  const tumbling = new Set<number>();
  const hopping = new Set<number>();
  const persons = new Map<number, { state: string; dateTime: number }>();
  const auctions: { id: number; seller: number; category: number; dateTime: number; expires: number }[] = [];
  const bidList: { auction: number; dateTime: number }[] = [];
  for (const e of generated) {
    if (e.type === "person") persons.set(e.id, e);
    if (e.type === "auction") auctions.push(e);
    if (e.type !== "bid" || !withBids) continue;
    bidList.push(e);
    bids++;
    if (e.auction % Q2_AUCTION_MODULUS === 0) selected++;
    maxTime = Math.max(maxTime, e.dateTime);
    tumbling.add(Math.floor(e.dateTime / WINDOW_MS) * WINDOW_MS);
    const last = Math.floor(e.dateTime / SLIDE_MS) * SLIDE_MS;
    for (let start = last - WINDOW_MS + SLIDE_MS; start <= last; start += SLIDE_MS) hopping.add(start);
  }
  const watermark = maxTime - bound;
  const closed = (starts: Set<number>) => [...starts].filter((s) => s + WINDOW_MS <= watermark).length;
  // The joins, by their definitions (queries.ts).
  const q3 = auctions.filter((a) => a.category === 10 && ["OR", "ID", "CA"].includes(persons.get(a.seller)?.state ?? "")).length;
  const byId = new Map(auctions.map((a) => [a.id, a]));
  const longest = maxAuctionMs({ seed: 0, count: 0 });
  const categories = new Set<number>();
  for (const b of bidList) {
    const a = byId.get(b.auction);
    if (a && a.dateTime <= b.dateTime && b.dateTime <= a.expires && b.dateTime - a.dateTime <= longest) {
      categories.add(a.category);
    }
  }
  const latest = (times: Iterable<{ dateTime: number }>) => {
    let max = Number.NEGATIVE_INFINITY;
    for (const { dateTime } of times) max = Math.max(max, dateTime);
    return max;
  };
  const low = Math.min(latest(persons.values()), latest(auctions));
  const start = (t: number) => Math.floor(t / WINDOW_MS) * WINDOW_MS;
  const opened = new Set(auctions.map((a) => `${a.seller}/${start(a.dateTime)}`));
  const q8 =
    [...persons].filter(([id, p]) => start(p.dateTime) + WINDOW_MS <= low - bound && opened.has(`${id}/${start(p.dateTime)}`))
      .length;
  return { q0: bids, q1: bids, q2: selected, q3, q4: categories.size, q5: closed(hopping), q7: closed(tumbling), q8 };
}

/** The read ceiling a query is held to: that of the events it reads (q3 and q8: `nexmark_pa`). */
function ceilingCase(q: QueryName): string {
  return reads[q].includes("bid") ? "nexmark-ceiling" : "nexmark-ceiling-pa";
}

/** The Nexmark section of RESULTS.md, from the cases measured so far. */
export function nexmarkReport(
  cases: Readonly<Record<string, { eventsPerSec?: number; peakRssMb?: number; eddyReaderEventsPerSec?: number }>>,
): string[] {
  const bidCeiling = cases["nexmark-ceiling"]?.eventsPerSec;
  const paCeiling = cases["nexmark-ceiling-pa"]?.eventsPerSec;
  const eddyReader = cases["nexmark-ceiling"]?.eddyReaderEventsPerSec;
  const cell = (v: number | undefined, digits = 0) =>
    v === undefined ? "" : v.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const rows = nexmarkQueries.flatMap((q) => {
    const c = cases[`nexmark-${q}`];
    if (!c?.eventsPerSec) return [];
    const eps = c.eventsPerSec;
    const flink = flinkPerCore[q];
    const own = ceilingCase(q);
    const ceiling = cases[own]?.eventsPerSec;
    const ofCeiling = ceiling ? eps / ceiling : undefined;
    // Beside a ceiling of other events, the bids' too (what the table compared with before).
    const ofBids = own !== "nexmark-ceiling" && bidCeiling ? eps / bidCeiling : undefined;
    const ofFlink = flink ? eps / flink : undefined;
    const target = ceilingBound.has(q)
      ? `≥ ${CEILING_TARGET} of ceiling: ${ofCeiling === undefined ? "?" : ofCeiling >= CEILING_TARGET ? "met" : "MISSED"}`
      : flink === undefined
      ? "none set"
      : `≥ Flink per core: ${ofFlink === undefined ? "?" : ofFlink >= 1 ? "met" : "MISSED"}`;
    return [
      `| ${q} | ${cell(eps)} | ${reads[q].join("+")} | ${cell(ceiling)} | ${cell(ofCeiling, 2)} | ${cell(ofBids, 2)} | ${
        cell(flink)
      } | ${cell(ofFlink, 2)} | ${cell(c.peakRssMb, 1)} | ${target} |`,
    ];
  });
  if (rows.length === 0) return [];
  return [
    "## Nexmark",
    "",
    "Events read per second by each query's Eddy pipeline (one Node process, checkpoints on; the kinds of event it reads: bids, or persons and auctions for q3 and q8, auctions and bids for q4), next to the read ceiling of what it reads, measured in the same run, and open-source Flink's published per-core figure. " +
    `The ceiling of a query reading bids is that of the bids (${
      cell(bidCeiling)
    } events/s); of q3 and q8, which read persons and auctions (larger JSON: ~200 and ~500 bytes to a bid's ~100), that of stream \`${joinStream}\` (${
      cell(paCeiling)
    } events/s): the target's denominator is the ceiling of what the query reads; the share of the bids' ceiling is shown beside it.` +
    (eddyReader
      ? ` The ceiling is the client's ordered consumer loop; Eddy's own reader with the same JSON.parse read ${
        Math.round(eddyReader).toLocaleString("en")
      } bids/s in the same run (${bidCeiling ? (eddyReader / bidCeiling).toFixed(2) : "?"} of the bids' ceiling).`
      : ""),
    "",
    "| query | Eddy events/s | reads | read ceiling | of ceiling | of bids' ceiling | Flink per core | of Flink | peak RSS MB | target |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...rows,
    "",
  ];
}
