/**
 * Event streams Eddy's examples and workers create when missing: file storage, a 10-minute
 * duplicate window (so a message published again under the same Nats-Msg-Id is stored once), and
 * the subjects given. An existing stream is left as it is. And where a stream (or one subject of
 * it) ends: `lastSequence`; and what it holds, read once through: `readStream`.
 *
 * @example
 * await ensureStream(nc, "orders", ["orders.>"]);
 */
import {
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  type OrderedConsumerOptions,
  StorageType,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { systemClock } from "../core/clock.ts";
import { StreamError } from "../core/errors.ts";

/** How long JetStream remembers a Nats-Msg-Id, in nanoseconds. */
export const duplicateWindowNs = 10 * 60 * 1_000_000_000;

/**
 * Create stream `stream` over `subjects` with `replicas` copies, unless it exists; with several
 * copies, resolves once it has a leader (`waitForLeader`).
 */
export async function ensureStream(
  nc: NatsConnection,
  stream: string,
  subjects: readonly string[],
  replicas = 1,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(stream);
    if (replicas > 1) await waitForLeader(jsm, stream);
    return;
  } catch (e) {
    if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound)) {
      throw new StreamError({
        stream,
        message: `cannot look up stream ${stream}: ${String(e)}`,
        hint: "is JetStream enabled on the server (-js)?",
        cause: e,
      });
    }
  }
  try {
    await jsm.streams.add({
      name: stream,
      subjects: [...subjects],
      storage: StorageType.File,
      duplicate_window: duplicateWindowNs,
      num_replicas: replicas,
    });
  } catch (e) {
    // Workers starting together create it together: one of them wins, the others find it there.
    if (await jsm.streams.info(stream).then(() => true, () => false)) {
      if (replicas > 1) await waitForLeader(jsm, stream);
      return;
    }
    throw new StreamError({
      stream,
      message: `cannot create stream ${stream} for ${subjects.join(", ")}: ${String(e)}`,
      hint: "another stream may already capture these subjects; pass a different stream name or subject",
      cause: e,
    });
  }
  if (replicas > 1) await waitForLeader(jsm, stream);
}

/**
 * Resolves once `stream` has a leader. On a cluster, a stream with several copies, just created
 * (or whose leader just stopped), has none for a moment: a publish to it finds no responders
 * (nats.js: "jetstream is not enabled") and requests time out. Checked every 50 ms to 1 s, up to
 * `timeoutMs` (default 30 000: an election on nats-server 2.9 takes ~4-10 s).
 */
export async function waitForLeader(jsm: JetStreamManager, stream: string, timeoutMs = 30_000): Promise<void> {
  const deadline = systemClock.now() + timeoutMs;
  let last: unknown;
  for (let delayMs = 50;; delayMs = Math.min(1000, delayMs * 2)) {
    try {
      const info = await jsm.streams.info(stream);
      if (info.cluster === undefined || info.cluster.leader) return;
      last = "no leader yet";
    } catch (e) {
      last = e;
    }
    if (systemClock.now() + delayMs > deadline) {
      throw new StreamError({
        stream,
        message: `stream ${stream} has no leader after ${timeoutMs} ms (${String(last)})`,
        hint: "on a cluster, a majority of the stream's servers must be up",
        cause: last,
      });
    }
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, delayMs));
  }
}

/** The stream sequence of the last message in `stream`, or on `subject` of it when given (0: none). */
export async function lastSequence(nc: NatsConnection, stream: string, subject?: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  if (subject === undefined) return (await jsm.streams.info(stream)).state.last_seq;
  try {
    return (await jsm.streams.getMessage(stream, { last_by_subj: subject }))?.seq ?? 0;
  } catch (e) {
    if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.NoMessageFound) return 0;
    throw new StreamError({ stream, message: `cannot read the last message on ${subject}: ${String(e)}`, hint: "", cause: e });
  }
}

/**
 * Hand each message `stream` holds now (as `options` select them: a subject filter, a start
 * sequence or time, headers only) to `each`, in order, through an ordered consumer; messages
 * stored meanwhile may come too. Resolves with how many it handed over.
 */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  options: Partial<OrderedConsumerOptions>,
  each: (m: JsMsg) => void,
): Promise<number> {
  const consumer = await jetstream(nc).consumers.get(stream, options);
  if ((await consumer.info(true)).num_pending === 0) return 0;
  let read = 0;
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      each(m);
      read++;
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return read;
}
