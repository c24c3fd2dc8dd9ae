/**
 * Reading a source: an ordered, ack-less pull consumer over a JetStream stream (optionally one
 * subject filter), starting after the committed position. No acks: the position lives with the
 * operators' state. Messages are handed over in batches, as many as have arrived, up to
 * `maxBatch`; `beforeNext` lets the caller hold reading back (backpressure) between batches. The
 * reader drives the consumer itself over one core subscription, and recreates it after a gap in
 * the consumer sequence, missed heartbeats or a server restart.
 * See docs/ARCHITECTURE.md, "Reading a source", for how and why.
 *
 * @example
 * const reader = await startReader(nc, { stream: "orders", fromSeq: 1, onBatch: (msgs) => console.log(msgs.length) });
 * await reader.stop();
 */
import { AckPolicy, DeliverPolicy, JetStreamApiError, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type Msg, type NatsConnection, nuid, type Subscription } from "@nats-io/nats-core";
import { StreamError } from "../core/errors.ts";
import { systemClock } from "../core/clock.ts";

export interface SourceMessage {
  readonly seq: number;
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
  /** Called if reading stops by itself (an error it cannot recover from); not after `stop()`. */
  readonly onError?: (error: unknown) => void;
  /** Called each time the consumer is recreated (a gap, missed heartbeats), with the reason. */
  readonly onReset?: (reason: string) => void;
  /** Idle heartbeat interval in ms (pulls expire after twice this). Default 5000. */
  readonly heartbeatMs?: number;
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

const ms = (n: number) => n * 1_000_000; // JetStream durations are nanoseconds

export async function startReader(nc: NatsConnection, options: ReaderOptions): Promise<Reader> {
  // No API check: one more request, which times out while a cluster elects a leader.
  const reader = new PullReader(nc, await jetstreamManager(nc, { checkAPI: false }), options);
  try {
    await reader.create();
  } catch (error) {
    // JetStream refused the consumer (no such stream, a bad filter): say so. A timeout or a 503
    // (the stream is electing a leader): the reader creates it at its next tick, as after a loss.
    if (error instanceof JetStreamApiError && error.status !== 503) throw error;
    reader.createLater(String(error));
  }
  return reader;
}

class PullReader implements Reader {
  readonly #maxBatch: number;
  readonly #window: number;
  readonly #heartbeatMs: number;
  readonly #prefix = `_INBOX.${nuid.next()}`;
  #generation = 0;
  #sub: Subscription | undefined;
  #consumer = "";
  /** `$JS.ACK.<stream>.<consumer>.`: the start of every message's reply subject (2.9). */
  #ackPrefix = "";
  /** The last stream sequence taken, and the consumer sequence it came with. */
  #lastSeq: number;
  #consumerSeq = 0;
  /** Messages requested and not yet delivered (or discarded by an expired pull). */
  #requested = 0;
  #batch: SourceMessage[] = [];
  #scheduled = false;
  #held = false;
  #stopped = false;
  #resetting = false;
  /** Heartbeat intervals in a row without a message or a heartbeat. */
  #quiet = 0;
  #timer: unknown = undefined;

  constructor(readonly nc: NatsConnection, readonly jsm: JetStreamManager, readonly options: ReaderOptions) {
    this.#maxBatch = options.maxBatch ?? defaultMaxBatch;
    this.#window = 4 * this.#maxBatch;
    this.#heartbeatMs = options.heartbeatMs ?? 5000;
    this.#lastSeq = options.fromSeq - 1;
  }

  /** Create the consumer from the stream sequence after the last one taken, and start pulling. */
  async create(): Promise<void> {
    const { stream, subject } = this.options;
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    const old = this.#consumer;
    if (old) void this.jsm.consumers.delete(stream, old).catch(() => undefined);
    const generation = ++this.#generation;
    const name = `${this.#prefix.slice(7)}_${generation}`;
    const inbox = `${this.#prefix}.${generation}`;
    const from = this.#lastSeq + 1;
    await this.jsm.consumers.add(stream, {
      name,
      ack_policy: AckPolicy.None,
      ...(from > 1
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
        : { deliver_policy: DeliverPolicy.All }),
      ...(subject ? { filter_subject: subject } : {}),
      inactive_threshold: ms(5 * 60_000),
      num_replicas: 1,
      mem_storage: true,
    });
    if (this.#stopped || generation !== this.#generation) {
      void this.jsm.consumers.delete(stream, name).catch(() => undefined);
      return;
    }
    this.#consumer = name;
    this.#ackPrefix = `$JS.ACK.${stream}.${name}.`;
    this.#consumerSeq = 0;
    this.#requested = 0;
    this.#sub = this.nc.subscribe(inbox, { callback: (err, msg) => this.#onMessage(generation, err, msg) });
    this.#quiet = 0;
    if (this.#timer === undefined) this.#tick();
    this.#pull();
  }

  /** The consumer could not be created: try again at every tick until it is. */
  createLater(reason: string): void {
    this.options.onReset?.(`creating the consumer failed (${reason})`);
    if (this.#timer === undefined) this.#tick();
  }

  #pull(): void {
    if (this.#held || this.#stopped || this.#requested > this.#window / 2 || !this.#sub) return;
    const batch = this.#window - this.#requested;
    this.#requested = this.#window;
    const request = { batch, expires: ms(2 * this.#heartbeatMs), idle_heartbeat: ms(this.#heartbeatMs) };
    try {
      this.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.options.stream}.${this.#consumer}`, JSON.stringify(request), {
        reply: this.#sub.getSubject(),
      });
    } catch {
      this.#requested -= batch; // the connection refused it (closing): the watch retries
    }
  }

  #onMessage(generation: number, err: Error | null, msg: Msg): void {
    if (generation !== this.#generation || this.#stopped) return;
    if (err) {
      this.#fail(err);
      return;
    }
    this.#quiet = 0;
    const reply = msg.reply;
    if (!reply) {
      this.#onStatus(msg);
      return;
    }
    const ackPrefix = this.#ackPrefix;
    let streamSeq: number;
    let consumerSeq: number;
    if (reply.startsWith(ackPrefix)) {
      // <delivered>.<stream seq>.<consumer seq>.<time>.<pending>: read in place, no split.
      const end = reply.length;
      let i = reply.indexOf(".", ackPrefix.length) + 1;
      let c: number;
      streamSeq = 0;
      while (i < end && (c = reply.charCodeAt(i++)) !== 46) streamSeq = streamSeq * 10 + c - 48;
      consumerSeq = 0;
      while (i < end && (c = reply.charCodeAt(i++)) !== 46) consumerSeq = consumerSeq * 10 + c - 48;
    } else {
      // Newer servers: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>...
      const tokens = reply.split(".");
      streamSeq = Number(tokens[tokens.length >= 12 ? 7 : 5]);
      consumerSeq = Number(tokens[tokens.length >= 12 ? 8 : 6]);
    }
    this.#requested--;
    if (consumerSeq !== this.#consumerSeq + 1) {
      this.#reset(`consumer sequence ${consumerSeq} after ${this.#consumerSeq}`);
      return;
    }
    this.#consumerSeq = consumerSeq;
    this.#lastSeq = streamSeq;
    this.#batch.push({ seq: streamSeq, data: msg.data });
    if (this.#batch.length >= this.#maxBatch) this.#handOver();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      systemClock.setTimeout(this.#handOverScheduled, 0);
    }
    this.#pull();
  }

  #onStatus(msg: Msg): void {
    const headers = msg.headers;
    const code = headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat (or flow control, which an ack-less pull never asks for)
    if (code === 404 || code === 408 || code === 409) {
      const left = Number(headers?.get("Nats-Pending-Messages") ?? 0);
      if (left > 0) this.#requested = Math.max(0, this.#requested - left);
      const description = (headers?.description ?? "").toLowerCase();
      if (code === 409 && (description.includes("deleted") || description.includes("leadership"))) {
        this.#reset(`consumer ${description}`);
        return;
      }
      this.#pull();
      return;
    }
    if (code === 503) {
      this.#reset("no responders (503)");
      return;
    }
    if (code === 400) this.#fail(new Error(`pull request rejected: ${headers?.description ?? "bad request"}`));
  }

  readonly #handOverScheduled = () => {
    this.#scheduled = false;
    this.#handOver();
  };

  #handOver(): void {
    if (this.#held || this.#stopped || this.#batch.length === 0) return;
    const batch = this.#batch.length > this.#maxBatch ? this.#batch.splice(0, this.#maxBatch) : this.#batch;
    if (batch === this.#batch) this.#batch = [];
    try {
      this.options.onBatch(batch);
    } catch (error) {
      this.#fail(error);
      return;
    }
    const wait = this.options.beforeNext?.();
    if (wait) {
      this.#held = true;
      void wait.then(() => {
        this.#held = false;
        if (this.#stopped) return;
        this.#handOver();
        this.#pull();
      });
    } else if (this.#batch.length > 0) this.#handOver();
  }

  #tick(): void {
    this.#timer = systemClock.setTimeout(() => {
      this.#watch();
      if (!this.#stopped) this.#tick();
    }, this.#heartbeatMs);
  }

  /** Every heartbeat interval: recreate a consumer that went silent, or whose creation failed. */
  #watch(): void {
    if (this.#stopped || this.#resetting) return;
    if (!this.#sub) this.#reset("recreating");
    else if (++this.#quiet > 2) this.#reset("missed heartbeats");
    else this.#pull();
  }

  #reset(reason: string): void {
    if (this.#stopped || this.#resetting) return;
    this.#resetting = true;
    this.#generation++; // messages of the old consumer are ignored from here on
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    this.options.onReset?.(reason);
    this.create().catch(() => undefined).finally(() => (this.#resetting = false));
  }

  #fail(error: unknown): void {
    if (this.#stopped) return;
    void this.stop();
    this.options.onError?.(error);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) systemClock.clearTimeout(this.#timer);
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    if (this.#consumer && !this.nc.isClosed()) {
      await this.jsm.consumers.delete(this.options.stream, this.#consumer).catch(() => undefined);
    }
  }
}
