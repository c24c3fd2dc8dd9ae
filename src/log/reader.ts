/**
 * Reading a source: an ordered consumer over a JetStream stream (optionally one subject filter),
 * starting after the committed position. No acks: the position lives with the operators' state.
 * Messages are handed over in batches, as many as have arrived, up to `maxBatch`; `beforeNext`
 * lets the caller hold reading back (backpressure) between batches.
 *
 * @example
 * const reader = await startReader(js, { stream: "orders", fromSeq: 1, onBatch: (msgs) => console.log(msgs.length) });
 * await reader.stop();
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { StreamError } from "../errors.ts";
import { nextTurn } from "../runtime/clock.ts";

export interface SourceMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
}

export interface ReaderOptions {
  readonly stream: string;
  readonly subject?: string | undefined;
  /** First stream sequence to read. */
  readonly fromSeq: number;
  readonly onBatch: (messages: SourceMessage[]) => void;
  /** Awaited between batches when it returns a promise. */
  readonly beforeNext?: () => Promise<void> | undefined;
  readonly maxBatch?: number;
  /** Called if reading stops by itself (an error, or the consumer ended); not after `stop()`. */
  readonly onError?: (error: unknown) => void;
}

export interface Reader {
  stop(): Promise<void>;
}

/** Fail with a clear StreamError when a source stream is missing. */
export async function checkSourceStream(jsm: JetStreamManager, stream: string): Promise<void> {
  try {
    await jsm.streams.info(stream);
  } catch (cause) {
    throw new StreamError({
      stream,
      message: `the source stream "${stream}" does not exist on the NATS server`,
      hint:
        `create it first (e.g. \`nats stream add ${stream} --subjects '${stream}.>'\`), or fix the stream name in the pipeline's source`,
      cause,
    });
  }
}

/** The largest batch handed over, unless the caller says otherwise. */
export const defaultMaxBatch = 2000;

/** getPending() overcounts by the callbacks in the delivery being yielded: one or two at most. */
const PENDING_SLACK = 2;
const IDLE = Symbol("idle");
const nextMacrotask = () => nextTurn().then(() => IDLE);

export async function startReader(js: JetStreamClient, options: ReaderOptions): Promise<Reader> {
  const { stream, subject, fromSeq, onBatch, beforeNext, onError } = options;
  const maxBatch = options.maxBatch ?? defaultMaxBatch;
  const consumer = await js.consumers.get(stream, {
    ...(subject ? { filter_subjects: subject } : {}),
    ...(fromSeq > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq }
      : { deliver_policy: DeliverPolicy.All }),
  });
  const messages = await consumer.consume({ max_messages: 4 * maxBatch, expires: 10_000 });
  let stopped = false;
  let ended = false;
  const done = (async () => {
    let batch: SourceMessage[] = [];
    const flush = async () => {
      const full = batch;
      batch = [];
      onBatch(full);
      const wait = beforeNext?.();
      if (wait) await wait;
    };
    const it = messages[Symbol.asyncIterator]();
    try {
      while (!stopped) {
        const next = it.next();
        // getPending() can stay above 0 when nothing is queued: it counts the consumer's own
        // pull-request callback that shared the client's last delivery. Whenever it might be
        // wrong, a partial batch is flushed if no message is ready by the next macrotask (queued
        // messages are yielded in microtasks), so the last messages of a stream are never held.
        if (batch.length > 0 && messages.getPending() <= PENDING_SLACK) {
          const first = await Promise.race([next, nextMacrotask()]);
          if (first === IDLE) await flush();
        }
        const r = await next;
        if (r.done) break;
        const m = r.value;
        batch.push({ seq: m.seq, subject: m.subject, data: m.data });
        if (batch.length >= maxBatch || messages.getPending() === 0) await flush();
      }
      if (!stopped) onError?.(new Error(`reading ${stream} ended unexpectedly`));
    } catch (error) {
      if (!stopped) onError?.(error);
    } finally {
      ended = true;
      if (stopped) await it.return?.(undefined);
    }
  })();
  return {
    async stop() {
      stopped = true;
      // A consumer whose messages already ended (the reason the worker stops this reader) may
      // never settle its close: release it without waiting.
      if (ended) void messages.close().catch(() => undefined);
      else await messages.close();
      await done;
    },
  };
}
