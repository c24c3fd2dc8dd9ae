/**
 * Acknowledged publishing without a promise per message.
 *
 * `js.publish` awaits one request per message: a promise, a timer and an inbox lookup each, and it
 * tops out near 20-28k msg/s here, while a core publish into a stream runs several times faster.
 * JetStream answers any message that carries a reply subject with a PubAck, so the Publisher does
 * core publishes whose reply subjects all sit under ONE wildcard subscription
 * (`_INBOX.<nuid>.<seq>`) and counts the acks as they come back:
 *
 * - every message gets a sequence number `seq`; its ack arrives on `<inbox>.<seq>`;
 * - outstanding messages live in a ring indexed by `seq`; `base` is the lowest seq not yet settled,
 *   so `flush()` is "wait until base reaches the seq that was next when flush was called";
 * - one timer, armed while something is outstanding (it lapses at its next tick once nothing is;
 *   clearing and re-arming it for every message published after an idle spell cost more), sweeps
 *   for messages whose ack is older than `ackTimeoutMs` and re-publishes them (same data, same `Nats-Msg-Id`, same reply subject);
 *   JetStream de-duplicates by msg id and KV puts are idempotent upserts, so a re-publish is safe;
 * - a rejected ack (`{"error":..}`) or a 503 no-responders status (no stream listens on the
 *   subject) fails the message with a PublishError.
 *
 * Messages are written as protocol frames (`HPUB <subject> <reply> <hlen> <len>`, headers, data)
 * into one buffer, handed to the connection's outbound queue at 64 KiB or at the end of the
 * current task, whichever comes first: `nc.publish` would build a headers map, render and encode
 * it, encode the protocol line and queue four buffers per message, and write every 32 KiB. The
 * buffer goes through the connection's own outbound queue (nats-core's `protocol.sendCommand`), so
 * it is ordered with everything else the connection sends and is kept across a reconnect, as
 * `nc.publish` would; the checks `nc.publish` makes (closed or draining connection, subject,
 * max_payload) are made here.
 *
 * Errors reach the caller through `flush()`: a failure rejects every flush that is waiting and whose
 * range holds the failed message; if none is waiting, the next `flush()` call rejects with it (the
 * first such failure, if several). A failure is reported once; the Publisher stays usable.
 *
 * Backpressure is the caller's job: `publish()` never blocks and never buffers beyond the socket.
 * Publish a batch, then `await publisher.whenPendingBelow()` (default threshold: `maxPending`).
 * Enforcing a limit inside a synchronous `publish()` could only throw, drop, or queue; queueing would
 * hide the same unbounded memory inside the Publisher, so the limit stays visible at the caller.
 *
 * @example
 * const publisher = createPublisher(nc);
 * for (const row of rows) publisher.publish(kvSubject("totals", row.key), encode(row), { msgId: row.id });
 * await publisher.whenPendingBelow();
 * await publisher.flush(); // every row above is stored, or a PublishError says which subject failed
 * await publisher.close();
 */
import { nuid } from "@nats-io/nats-core";
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { PublishError } from "../core/errors.ts";
import { systemClock } from "../core/clock.ts";
import type { Clock } from "../core/clock.ts";

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
}

export interface PublishOptions {
  /** Sent as `Nats-Msg-Id`: JetStream drops a second message with the same id inside its window. */
  readonly msgId?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Called with the stream sequence JetStream stored the message under, when it is acknowledged. */
  readonly onStored?: (streamSeq: number) => void;
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
  return new AckCountingPublisher(nc, opts);
}

/** One outstanding message: what a re-publish needs, nothing more. Dropped when settled. */
interface Outstanding {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly onStored: ((streamSeq: number) => void) | undefined;
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

/** Frames are handed to the connection once this many bytes are buffered (or at the end of the task). */
const FRAME_BUFFER_BYTES = 64 * 1024;
/** The part of the connection the frames go through: nats-core's outbound queue. */
interface Outbound {
  sendCommand(frame: Uint8Array): void;
}

/** The connection's outbound queue; every NatsConnection of nats-core has one. */
function outboundOf(nc: NatsConnection): Outbound {
  const protocol = (nc as unknown as { protocol?: Partial<Outbound> }).protocol;
  if (typeof protocol?.sendCommand !== "function") {
    throw new PublishError({ subject: "", message: "the Publisher needs a nats-core connection (its protocol.sendCommand)" });
  }
  return protocol as Outbound;
}

class AckCountingPublisher implements Publisher {
  readonly #nc: NatsConnection;
  readonly #clock: Clock;
  readonly #ackTimeoutMs: number;
  readonly #retries: number;
  readonly #maxPending: number;
  readonly #retryNoResponders: boolean;
  readonly #inbox: string; // "<prefix>.<nuid>." — reply subjects are this plus seq
  readonly #sub: Subscription;
  readonly #outbound: Outbound;
  /** Frames not yet handed to the connection: `#frames[0, #framesLength)`. */
  #frames = new Uint8Array(2 * FRAME_BUFFER_BYTES);
  #framesLength = 0;
  /** Scratch space for one message's header block. */
  #headerBytes = new Uint8Array(1024);
  /** The last subject that passed the checks (most messages go to the same few subjects). */
  #checkedSubject = "";

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

  constructor(nc: NatsConnection, opts: PublisherOptions) {
    this.#nc = nc;
    this.#clock = opts.clock ?? systemClock;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
    this.#retries = opts.retries ?? 3;
    this.#maxPending = opts.maxPending ?? 20_000;
    this.#retryNoResponders = opts.retryNoResponders ?? false;
    this.#inbox = `${opts.inboxPrefix ?? "_INBOX"}.${nuid.next()}.`;
    this.#outbound = outboundOf(nc);
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

  #send(seq: number, entry: Outstanding): void {
    const { subject, data, msgId, headers } = entry;
    const nc = this.#nc;
    if (nc.isClosed() || nc.isDraining()) {
      throw new PublishError({
        subject,
        message: `publish to ${subject}: the connection is ${nc.isClosed() ? "closed" : "draining"}`,
      });
    }
    if (subject !== this.#checkedSubject) {
      if (subject.length === 0 || /\s/.test(subject)) {
        throw new PublishError({ subject, message: `publish to "${subject}": invalid subject` });
      }
      this.#checkedSubject = subject;
    }
    let hlen = 0;
    if (msgId !== undefined || headers !== undefined) {
      let block = "NATS/1.0\r\n";
      if (headers) { for (const k in headers) block += `${k}: ${checkHeader(subject, headers[k] as string)}\r\n`; }
      if (msgId !== undefined) block += `Nats-Msg-Id: ${checkHeader(subject, msgId)}\r\n`;
      block += "\r\n";
      if (block.length * 3 > this.#headerBytes.length) this.#headerBytes = new Uint8Array(block.length * 3);
      hlen = encoder.encodeInto(block, this.#headerBytes).written;
    }
    const len = hlen + data.length;
    const maxPayload = nc.info?.max_payload;
    if (maxPayload !== undefined && len > maxPayload) {
      throw new PublishError({
        subject,
        message: `publish to ${subject}: ${len} bytes exceed the server's max_payload ${maxPayload}`,
      });
    }
    const reply = this.#inbox + seq;
    const line = hlen > 0 ? `HPUB ${subject} ${reply} ${hlen} ${len}\r\n` : `PUB ${subject} ${reply} ${len}\r\n`;
    // Room for the line (UTF-8: at most 3 bytes per UTF-16 unit), the message and the closing CRLF.
    const need = line.length * 3 + len + 2;
    if (this.#framesLength + need > this.#frames.length) {
      this.#handOver();
      if (need > this.#frames.length) this.#frames = new Uint8Array(need + FRAME_BUFFER_BYTES);
    }
    const frames = this.#frames;
    if (this.#framesLength === 0) queueMicrotask(this.#handOverAtEndOfTask);
    let at = this.#framesLength;
    at += encoder.encodeInto(line, frames.subarray(at)).written;
    if (hlen > 0) {
      frames.set(this.#headerBytes.subarray(0, hlen), at);
      at += hlen;
    }
    frames.set(data, at);
    at += data.length;
    frames[at++] = 13;
    frames[at++] = 10;
    this.#framesLength = at;
    if (at >= FRAME_BUFFER_BYTES) this.#handOver();
  }

  readonly #handOverAtEndOfTask = () => this.#handOver();

  /** Give the buffered frames to the connection's outbound queue (which keeps the buffer). */
  #handOver(): void {
    if (this.#framesLength === 0) return;
    const frames = this.#frames.subarray(0, this.#framesLength);
    this.#frames = new Uint8Array(2 * FRAME_BUFFER_BYTES);
    this.#framesLength = 0;
    this.#outbound.sendCommand(frames);
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
    let ack: { seq?: number; error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(data));
    } catch (cause) {
      this.#fail(seq, entry, `unreadable ack: ${decoder.decode(data)}`, cause);
      return;
    }
    if (ack.error) {
      if (ack.error.code === 503 && this.#retryNoResponders) return;
      const e = ack.error;
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

/** A header value as nats-core accepts it: no CR or LF (they would end the header block). */
function checkHeader(subject: string, value: string): string {
  if (value.includes("\r") || value.includes("\n")) {
    throw new PublishError({ subject, message: `publish to ${subject}: a header value contains CR or LF` });
  }
  return value;
}
