/**
 * Record batches: many output records in one JetStream message, for a stream sink that would
 * otherwise send one message per record (`toStream(id, { stream, batched: true })`). A batch is
 * JSON Lines with the header `Eddy-Records: <count>`; its Nats-Msg-Id names the input range it
 * holds the outputs of, `<pipeline>/<sink>/<source>/<from>-<to>`. A recovering sink reads back
 * the ranges it published (`OutputLog`) instead of relying on the duplicate window.
 * See docs/ARCHITECTURE.md, "Batched stream sinks", for why and how that is exactly once.
 *
 * @example
 * const records = recordsOf(msg.data, msg.headers); // a batch's records, or the one record of a plain message
 */
import { DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/nats-core";
import { lastSequence, readStream } from "./streams.ts";

/** The header that marks a record batch and counts its records. */
export const recordCountHeader = "Eddy-Records";

/** Source sequences `from` to `to`, both included. */
export interface InputRange {
  readonly from: number;
  readonly to: number;
}

const decoder = new TextDecoder();

/** The Nats-Msg-Id of the batch holding the outputs of `range` (prefix: `<pipeline>/<sink>/<source>`). */
export function batchMsgId(prefix: string, range: InputRange): string {
  return `${prefix}/${range.from}-${range.to}`;
}

/** The input range a batch's Nats-Msg-Id names, if it starts with `prefix/`. */
export function rangeOf(msgId: string, prefix: string): InputRange | undefined {
  if (!msgId.startsWith(`${prefix}/`)) return undefined;
  const match = /^(\d+)-(\d+)$/.exec(msgId.substring(prefix.length + 1));
  return match ? { from: Number(match[1]), to: Number(match[2]) } : undefined;
}

/** The records a message holds: each line of a batch, or the message itself, parsed as JSON. */
export function recordsOf(data: Uint8Array, headers?: MsgHdrs): unknown[] {
  const text = decoder.decode(data);
  if (!headers?.has(recordCountHeader)) return [JSON.parse(text)];
  const records = text.length === 0 ? [] : text.split("\n").map((line) => JSON.parse(line) as unknown);
  const count = Number(headers.get(recordCountHeader));
  if (records.length !== count) {
    throw new Error(`a record batch says it holds ${count} records and holds ${records.length}`);
  }
  return records;
}

/** What a batched sink or an edge reads back from its stream when it recovers. */
export interface OutputLog {
  /** The sequence after the last message on `subject` of `stream` (undefined: of the whole stream): where a new writer starts. */
  end(stream: string, subject: string | undefined): Promise<number>;
  /** The Nats-Msg-Ids of the messages on `subject` (a filter) of `stream` from sequence `from` on. */
  msgIds(stream: string, subject: string, from: number): Promise<string[]>;
  /**
   * When `subject` is the only subject of `stream`: the stream's last sequence (a sole writer may
   * then chain its messages, each naming the one before it); otherwise undefined.
   */
  soleSubject(stream: string, subject: string): Promise<number | undefined>;
}

/** The input ranges of the batches among `msgIds` with Nats-Msg-Ids under `prefix`, ascending. */
export function rangesOf(msgIds: readonly string[], prefix: string): InputRange[] {
  return msgIds.flatMap((id) => rangeOf(id, prefix) ?? []).sort((a, b) => a.from - b.from);
}

/** The OutputLog of a NATS connection. */
export function natsOutputLog(nc: NatsConnection): OutputLog {
  return {
    end: async (stream, subject) => (await lastSequence(nc, stream, subject)) + 1,
    async soleSubject(stream, subject) {
      const info = await (await jetstreamManager(nc)).streams.info(stream);
      const subjects = info.config.subjects ?? [];
      return subjects.length === 1 && subjects[0] === subject ? info.state.last_seq : undefined;
    },
    async msgIds(stream, subject, from) {
      const found: string[] = [];
      const options = {
        filter_subjects: subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: from,
        headers_only: true,
      };
      await readStream(nc, stream, options, (m) => {
        const id = m.headers?.get("Nats-Msg-Id");
        if (id) found.push(id);
      });
      return found;
    },
  };
}
