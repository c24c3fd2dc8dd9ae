/**
 * Acknowledged publishing without a promise per message: core publishes whose reply subjects all
 * sit under one wildcard inbox subscription, acks counted as they come back, overdue messages
 * re-published under the same `Nats-Msg-Id`, failures reported through `flush()`. Backpressure is
 * the caller's: `publish()` never blocks; await `whenPendingBelow()` between batches.
 * See docs/ARCHITECTURE.md, "Publishing", for the design, reconnects, errors and the measurements.
 *
 * @example
 * const publisher = createPublisher(nc);
 * for (const row of rows) publisher.publish(kvSubject("totals", row.key), encode(row), { msgId: row.id });
 * await publisher.whenPendingBelow();
 * await publisher.flush(); // every row above is stored, or a PublishError says which subject failed
 * await publisher.close();
 */
import { ClosedConnectionError, DrainingConnectionError, headers, InvalidSubjectError, nuid } from "@nats-io/nats-core";
import type { Msg, MsgHdrs, NatsConnection, Subscription } from "@nats-io/nats-core";
import { PublishError } from "../core/errors.ts";
import { systemClock } from "../core/clock.ts";
import type { Clock } from "../core/clock.ts";
import type { Fence } from "../core/fence.ts";

export interface PublisherOptions {
  /** How long to wait for an ack before re-publishing. Default 5000. */
  readonly ackTimeoutMs?: number;
  /** Re-publishes after a timed-out ack before the message fails. Default 3 (4 attempts in all). */
  readonly retries?: number;
  /** The default threshold of `whenPendingBelow()`; the caller keeps `pending` under it. Default 20000. */
  readonly maxPending?: number;
  /**
   * Treat a 503 (no responders, or JetStream temporarily unavailable) as transient: leave the
   * message outstanding so the ack timeout re-publishes it. For clusters, where a stream without a
   * leader answers 503 for a few seconds. Default false: a 503 fails the message at once.
   */
  readonly retryNoResponders?: boolean;
  /** Inbox prefix, when the connection's permissions require one. Default "_INBOX". */
  readonly inboxPrefix?: string;
  readonly clock?: Clock;
  /** Asked before every send (re-sends too): a worker whose leases may have moved sends nothing. */
  readonly fence?: Fence;
}

export interface PublishOptions {
  /** Sent as `Nats-Msg-Id`: JetStream drops a second message with the same id inside its window. */
  readonly msgId?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Called with the stream sequence JetStream stored the message under, when it is acknowledged. */
  readonly onStored?: (streamSeq: number) => void;
  /**
   * Called when JetStream refuses the message (an error ack): return true to take the refusal
   * over (the message is settled, and no flush hears of it), false to fail it as usual.
   */
  readonly onRefused?: (error: JetStreamRefusal) => boolean;
  /** Called when the message fails (refused, timed out, discarded), before any flush hears of it. */
  readonly onFailed?: (error: PublishError) => void;
}

/** The error of a JetStream ack. */
export interface JetStreamRefusal {
  readonly code?: number;
  readonly err_code?: number;
  readonly description?: string;
}

export interface Publisher {
  /** Publish without waiting. Throws PublishError only if the connection refuses it at once. */
  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void;
  /** Resolves when every message published before the call is acknowledged. */
  flush(): Promise<void>;
  /** Messages published and not yet acknowledged or failed. */
  readonly pending: number;
  /** Payload bytes of those messages: what the Publisher holds for re-publishing, and the socket may still buffer. */
  readonly pendingBytes: number;
  /** Resolves when `pending < n` (default `maxPending`; n below 1 counts as 1). */
  whenPendingBelow(n?: number): Promise<void>;
  /** Flush, then stop listening for acks. Publishing afterwards throws. */
  close(): Promise<void>;
  /**
   * Give up every message not yet acknowledged: none is sent again, and whoever waits on one
   * hears `reason`. For a worker that let all its partitions go (it lost the right to write):
   * a message it would re-send after it rejoins could land after the next owner's.
   */
  discardPending(reason: string): void;
}

/** One JSON message for `publishAll`. */
export interface Outgoing {
  readonly subject: string;
  readonly value: unknown;
  readonly msgId: string;
}

export interface PublishAllOptions {
  /** Publish at most this many messages per second (by `clock`); unpaced when absent. */
  readonly ratePerSec?: number;
  readonly clock?: Clock;
  /** Called after each batch with the number published so far (not yet acked). */
  readonly onProgress?: (published: number) => void;
  /** Checked after each batch: stop early (what was published is still acknowledged) when true. */
  readonly stopped?: () => boolean;
}

/**
 * Publish `messages` as JSON and wait until JetStream has acknowledged every one (a PublishError
 * otherwise). Pacing and backpressure are per batch (50 ms worth at `ratePerSec`, at most 1000),
 * never per message. Resolves with how many were published.
 */
export async function publishAll(
  nc: NatsConnection,
  messages: Iterable<Outgoing>,
  opts: PublishAllOptions = {},
): Promise<number> {
  const clock = opts.clock ?? systemClock;
  const rate = opts.ratePerSec;
  const batch = rate && rate > 0 ? Math.max(1, Math.min(1000, Math.ceil(rate / 20))) : 1000;
  const publisher = createPublisher(nc, { clock });
  const start = clock.now();
  let published = 0;
  try {
    for (const { subject, value, msgId } of messages) {
      publisher.publish(subject, encoder.encode(JSON.stringify(value)), { msgId });
      published++;
      if (published % batch !== 0) continue;
      opts.onProgress?.(published);
      if (opts.stopped?.()) break;
      await publisher.whenPendingBelow();
      if (rate && rate > 0) {
        const wait = start + (published / rate) * 1000 - clock.now();
        if (wait > 0) await new Promise<void>((resolve) => clock.setTimeout(resolve, wait));
      }
    }
    if (published % batch !== 0) opts.onProgress?.(published);
  } finally {
    await publisher.close(); // flushes: resolves once every message is acknowledged
  }
  return published;
}

export function createPublisher(nc: NatsConnection, opts: PublisherOptions = {}): Publisher {
  return new AckCountingPublisher(nc, opts, connectionWire(nc));
}

/** One outstanding message: what a re-publish needs, nothing more. Dropped when settled. */
interface Outstanding {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly onStored: ((streamSeq: number) => void) | undefined;
  readonly onRefused: ((error: JetStreamRefusal) => boolean) | undefined;
  readonly onFailed: ((error: PublishError) => void) | undefined;
  sentAt: number;
  attempts: number;
}

interface FlushWaiter {
  readonly upTo: number; // resolves when base >= upTo
  readonly resolve: () => void;
  readonly reject: (e: PublishError) => void;
}

interface PendingWaiter {
  readonly below: number;
  readonly resolve: () => void;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * How the Publisher hands one message to the connection: `publish` writes it, with its reply
 * subject, a `Nats-Msg-Id` and extra headers when given, or throws a PublishError naming the subject
 * if the connection refuses it (nothing is sent then). The Publisher's own is `connectionWire`;
 * scripts/bench-publisher.ts measures another beside it.
 */
export interface PublisherWire {
  publish(
    subject: string,
    reply: string,
    data: Uint8Array,
    msgId: string | undefined,
    headers: Readonly<Record<string, string>> | undefined,
  ): void;
}

/** The same Publisher over another wire: for measuring one beside `connectionWire` (scripts/bench-publisher.ts). */
export function createPublisherOver(nc: NatsConnection, wire: PublisherWire, opts: PublisherOptions = {}): Publisher {
  return new AckCountingPublisher(nc, opts, wire);
}

class AckCountingPublisher implements Publisher {
  readonly #clock: Clock;
  readonly #ackTimeoutMs: number;
  readonly #retries: number;
  readonly #maxPending: number;
  readonly #retryNoResponders: boolean;
  readonly #inbox: string; // "<prefix>.<nuid>." — reply subjects are this plus seq
  readonly #sub: Subscription;
  readonly #wire: PublisherWire;
  readonly #fence: Fence | undefined;

  // Ring of outstanding messages indexed by seq & mask, covering [base, next).
  #ring: (Outstanding | undefined)[] = new Array(1024);
  #mask = 1023;
  #base = 0;
  #next = 0;
  #pending = 0;
  #pendingBytes = 0;

  #flushWaiters: FlushWaiter[] = [];
  #pendingWaiters: PendingWaiter[] = [];
  #wakeBelow = 0; // the largest threshold among #pendingWaiters: nothing to wake while pending >= it
  #unreported: PublishError | undefined = undefined; // the first failure no flush has reported yet
  #timer: unknown = undefined;
  #closed = false;

  constructor(nc: NatsConnection, opts: PublisherOptions, wire: PublisherWire) {
    this.#clock = opts.clock ?? systemClock;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
    this.#retries = opts.retries ?? 3;
    this.#maxPending = opts.maxPending ?? 20_000;
    this.#retryNoResponders = opts.retryNoResponders ?? false;
    this.#inbox = `${opts.inboxPrefix ?? "_INBOX"}.${nuid.next()}.`;
    this.#wire = wire;
    this.#fence = opts.fence;
    this.#sub = nc.subscribe(`${this.#inbox}*`, { callback: (err, msg) => this.#onAck(err, msg) });
  }

  get pending(): number {
    return this.#pending;
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void {
    if (this.#closed) throw new PublishError({ subject, message: `publish to ${subject}: the publisher is closed` });
    if (this.#next - this.#base > this.#mask) this.#grow();
    const seq = this.#next;
    const entry: Outstanding = {
      subject,
      data,
      msgId: opts?.msgId,
      headers: opts?.headers,
      onStored: opts?.onStored,
      onRefused: opts?.onRefused,
      onFailed: opts?.onFailed,
      sentAt: this.#clock.now(),
      attempts: 1,
    };
    this.#send(seq, entry); // throws before we count it, if the connection refuses
    this.#ring[seq & this.#mask] = entry;
    this.#next = seq + 1;
    this.#pending++;
    this.#pendingBytes += data.length;
    if (this.#timer === undefined) this.#armTimer();
  }

  flush(): Promise<void> {
    const failed = this.#unreported;
    if (failed) {
      this.#unreported = undefined;
      return Promise.reject(failed);
    }
    const upTo = this.#next;
    if (this.#base >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => this.#flushWaiters.push({ upTo, resolve, reject }));
  }

  whenPendingBelow(n: number = this.#maxPending): Promise<void> {
    const below = Math.max(1, n);
    if (this.#pending < below) return Promise.resolve();
    this.#wakeBelow = Math.max(this.#wakeBelow, below);
    return new Promise((resolve) => this.#pendingWaiters.push({ below, resolve }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#sub.unsubscribe();
    }
  }

  discardPending(reason: string): void {
    for (let seq = this.#base; seq < this.#next; seq++) {
      const entry = this.#ring[seq & this.#mask];
      if (entry) this.#fail(seq, entry, reason);
    }
    this.#unreported = undefined; // nobody is left to hear it
  }

  #send(seq: number, entry: Outstanding): void {
    this.#fence?.check(entry.subject);
    this.#wire.publish(entry.subject, this.#inbox + seq, entry.data, entry.msgId, entry.headers);
  }

  #onAck(err: Error | null, msg: Msg): void {
    if (err) {
      // The inbox subscription itself failed (permissions, connection closed): nothing will be acked.
      for (let seq = this.#base; seq < this.#next; seq++) {
        const entry = this.#ring[seq & this.#mask];
        if (entry) this.#fail(seq, entry, `acks cannot be received on ${this.#inbox}*: ${err.message}`, err);
      }
      return;
    }
    const seq = Number(msg.subject.substring(this.#inbox.length));
    if (!(seq >= this.#base && seq < this.#next)) return; // a late second ack of a settled message
    const entry = this.#ring[seq & this.#mask];
    if (!entry) return;
    const data = msg.data;
    if (data.length === 0) {
      const code = msg.headers?.code ?? 0;
      if (code === 503) {
        if (!this.#retryNoResponders) this.#fail(seq, entry, "no responders: no stream captures this subject (503)");
        return;
      }
      this.#fail(seq, entry, `unexpected empty reply (status ${code} ${msg.headers?.description ?? ""})`);
      return;
    }
    // A PubAck is small JSON: `{"stream":...}` when stored, `{"error":...}` when not. The first
    // key tells them apart without parsing (byte 2 is its first letter).
    if (data[2] === 0x73 /* s */ && entry.onStored === undefined) {
      this.#settle(seq);
      return;
    }
    let ack: { seq?: number; error?: JetStreamRefusal };
    try {
      ack = JSON.parse(decoder.decode(data));
    } catch (cause) {
      this.#fail(seq, entry, `unreadable ack: ${decoder.decode(data)}`, cause);
      return;
    }
    if (ack.error) {
      if (ack.error.code === 503 && this.#retryNoResponders) return;
      const e = ack.error;
      if (entry.onRefused?.(e)) {
        this.#settle(seq);
        return;
      }
      this.#fail(seq, entry, `rejected by JetStream: ${e.description ?? "error"} (code ${e.code}, err_code ${e.err_code})`);
      return;
    }
    if (entry.onStored) {
      if (typeof ack.seq !== "number") return this.#fail(seq, entry, `an ack without a stream sequence: ${decoder.decode(data)}`);
      entry.onStored(ack.seq);
    }
    this.#settle(seq);
  }

  #fail(seq: number, entry: Outstanding, reason: string, cause?: unknown): void {
    const error = new PublishError({ subject: entry.subject, message: `publish to ${entry.subject} failed: ${reason}`, cause });
    entry.onFailed?.(error);
    let reported = false;
    this.#flushWaiters = this.#flushWaiters.filter((w) => {
      if (w.upTo <= seq) return true;
      w.reject(error);
      reported = true;
      return false;
    });
    if (!reported) this.#unreported ??= error;
    this.#settle(seq);
  }

  /** Drop an outstanding message (acked or failed), then wake whoever waits on it. */
  #settle(seq: number): void {
    this.#pendingBytes -= this.#ring[seq & this.#mask]!.data.length;
    this.#ring[seq & this.#mask] = undefined;
    this.#pending--;
    if (seq === this.#base) {
      let base = seq + 1;
      while (base < this.#next && this.#ring[base & this.#mask] === undefined) base++;
      this.#base = base;
      while (this.#flushWaiters.length > 0 && (this.#flushWaiters[0] as FlushWaiter).upTo <= base) {
        (this.#flushWaiters.shift() as FlushWaiter).resolve();
      }
    }
    if (this.#pending < this.#wakeBelow) {
      const pending = this.#pending;
      this.#wakeBelow = 0;
      this.#pendingWaiters = this.#pendingWaiters.filter((w) => {
        if (pending < w.below) {
          w.resolve();
          return false;
        }
        this.#wakeBelow = Math.max(this.#wakeBelow, w.below);
        return true;
      });
    }
  }

  #grow(): void {
    const size = (this.#mask + 1) * 2;
    const ring: (Outstanding | undefined)[] = new Array(size);
    for (let seq = this.#base; seq < this.#next; seq++) ring[seq & (size - 1)] = this.#ring[seq & this.#mask];
    this.#ring = ring;
    this.#mask = size - 1;
  }

  #armTimer(): void {
    const tick = Math.max(1, Math.floor(this.#ackTimeoutMs / 4));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#sweep();
      if (this.#pending > 0 && this.#timer === undefined && !this.#closed) this.#armTimer();
    }, tick);
  }

  /**
   * Re-publish or fail every message whose ack is overdue. First attempts are in seq order by send
   * time, and a message is only re-sent after every earlier first attempt timed out too, so the walk
   * can stop at the first first-attempt message that is not yet overdue.
   */
  #sweep(): void {
    const now = this.#clock.now();
    const next = this.#next;
    for (let seq = this.#base; seq < next; seq++) {
      const entry = this.#ring[seq & this.#mask];
      if (!entry || now - entry.sentAt < this.#ackTimeoutMs) {
        if (entry && entry.attempts === 1) break;
        continue;
      }
      if (entry.attempts > this.#retries) {
        this.#fail(seq, entry, `no ack after ${entry.attempts} attempts, ${this.#ackTimeoutMs} ms each`);
        continue;
      }
      entry.attempts++;
      entry.sentAt = now;
      try {
        this.#send(seq, entry);
      } catch (e) {
        this.#fail(seq, entry, `re-publish refused: ${String((e as PublishError).cause ?? e)}`, e);
      }
    }
  }
}

/**
 * The connection's public `nc.publish`: ordered with everything else the connection sends, counted
 * in `nc.stats()`. What it refuses becomes a
 * PublishError; and headers on a server without header support are refused here, since nats-core
 * 3.4 only formats that error without throwing it (core/src/protocol.ts), and the server would
 * answer an HPUB by closing the connection.
 */
export function connectionWire(nc: NatsConnection): PublisherWire {
  return {
    publish(subject, reply, data, msgId, extra) {
      let hdrs: MsgHdrs | undefined;
      try {
        if (msgId !== undefined || extra !== undefined) {
          if (nc.info && !nc.info.headers) {
            throw new PublishError({
              subject,
              message:
                `publish to ${subject}: the server (${nc.info.server_name}, ${nc.info.version}) does not support headers, ` +
                "so neither a msg id nor headers can be sent",
            });
          }
          hdrs = headers();
          if (extra) { for (const k in extra) hdrs.set(k, checkHeader(subject, extra[k] as string)); }
          if (msgId !== undefined) hdrs.set("Nats-Msg-Id", checkHeader(subject, msgId));
        }
        nc.publish(subject, data, { reply, headers: hdrs });
      } catch (cause) {
        if (cause instanceof PublishError) throw cause;
        throw refused(nc, subject, data.length + (hdrs ? encoder.encode(hdrs.toString()).length : 0), cause);
      }
    },
  };
}

/** A header value as nats-core accepts it: no CR or LF (they would end the header block). */
function checkHeader(subject: string, value: string): string {
  if (value.includes("\r") || value.includes("\n")) {
    throw new PublishError({ subject, message: `publish to ${subject}: a header value contains CR or LF` });
  }
  return value;
}

/** What `nc.publish` threw, as a PublishError in our words. */
function refused(nc: NatsConnection, subject: string, len: number, cause: unknown): PublishError {
  const because = cause instanceof ClosedConnectionError
    ? "the connection is closed"
    : cause instanceof DrainingConnectionError
    ? "the connection is draining"
    : cause instanceof InvalidSubjectError
    ? "invalid subject"
    : nc.info && len > nc.info.max_payload
    ? `${len} bytes exceed the server's max_payload ${nc.info.max_payload}`
    : `refused by the connection: ${cause instanceof Error ? cause.message : String(cause)}`;
  return new PublishError({ subject, message: `publish to ${subject}: ${because}`, cause });
}
