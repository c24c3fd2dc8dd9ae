/**
 * Nexmark events on JetStream: one stream (default `nexmark`), one subject per kind of event:
 * `nexmark.person`, `nexmark.auction`, `nexmark.bid`, each message one event as JSON.
 *
 * Why a subject per kind rather than one subject with the union: a query reads only the kinds it
 * needs, and the server does the selecting (a source's subject filter), so q0-q2, q5 and q7 never
 * decode a person or an auction; each source gets one plain schema (Bid, Auction, Person), and its
 * events' types need no narrowing in the query; the joins (q3, q4, q8) read two sources of the same
 * stream; and the three subjects are the three tables DuckDB loads. One stream keeps one
 * sequence over all events: the order they were generated in.
 *
 * Each message has `Nats-Msg-Id` `nexmark-<seed>-<n>` (n: the event's number in the generated
 * sequence), so publishing the same seed again stores every event once (within the stream's
 * 10-minute duplicate window). `kinds` publishes only some kinds of the same sequence: a stream for
 * queries that never read the bids (q3, q8) holds as many persons and auctions as a much longer
 * full run would, without the bids.
 *
 * @example
 * await publishNexmark(nc, { seed: 1, count: 100_000 });
 * // then e.g. Worker.start(nc, q1())
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { ensureStream, publishAll, type PublishAllOptions } from "@eddy/eddy";
import type { NexmarkEvent, NexmarkEventType } from "./events.ts";
import { generateNexmark, type NexmarkConfig } from "./generator.ts";

/** The default stream, and the prefix of its subjects. */
export const nexmarkStream = "nexmark";

/** The subject of one kind of event. */
export function nexmarkSubject(type: NexmarkEventType, stream = nexmarkStream): string {
  return `${stream}.${type}`;
}

/** Pacing and progress as in `publishAll`. */
export interface PublishNexmarkOptions extends NexmarkConfig, Omit<PublishAllOptions, "stopped"> {
  /** Stream to publish to, created when missing (subjects `<stream>.>`). Default `nexmark`. */
  readonly stream?: string;
  /** Publish only these kinds of event (the others are generated and skipped). Default: all. */
  readonly kinds?: readonly NexmarkEventType[];
  /** Called with each event published, in order (e.g. to compute expected results in the same pass). */
  readonly onEvent?: (event: NexmarkEvent) => void;
}

/** Publish `count` generated events and wait until JetStream has acknowledged every one. */
export async function publishNexmark(
  nc: NatsConnection,
  opts: PublishNexmarkOptions,
): Promise<{ published: number; byType: Record<NexmarkEventType, number> }> {
  const stream = opts.stream ?? nexmarkStream;
  await ensureStream(nc, stream, [`${stream}.>`]);
  const byType = { person: 0, auction: 0, bid: 0 };
  const kinds = new Set(opts.kinds ?? ["person", "auction", "bid"]);
  function* messages() {
    let n = -1;
    for (const event of generateNexmark(opts)) {
      n++; // message ids number every generated event, so a publish of some kinds has the same ids
      if (!kinds.has(event.type)) continue;
      opts.onEvent?.(event);
      byType[event.type]++;
      yield { subject: nexmarkSubject(event.type, stream), value: event, msgId: `nexmark-${opts.seed}-${n}` };
    }
  }
  return { published: await publishAll(nc, messages(), opts), byType };
}
