/**
 * A stream sink that sends its records in batches (src/log/record-batch.ts): the outputs of a range
 * of input sequences in one message. An actor opens a range where its input batch starts, adds each
 * output with the sequence of the input it came from, and closes the range where the input batch
 * ends (or earlier, once a batch holds `maxBatchBytes`). A recovery reads back the ranges published
 * after the checkpoint and drops the outputs of the inputs they cover. In a stream of its own (the
 * sink's subject its only one), each batch names the one before it (`Nats-Expected-Last-Msg-Id`;
 * the first after a recovery, the stream's last sequence): a batch a previous owner sent before it
 * was paused, landing after the read-back, is refused or makes this owner's next batch refused (and
 * the actor recover, reading it back); and a batch lost in a leader election stops the ones after it
 * from landing before it.
 * See docs/ARCHITECTURE.md, "Batched stream sinks".
 *
 * @example
 * const sink = new BatchedSink(publisher, "shop/large-orders/orders", { id: "large-orders", stream: "large_orders", subject: "large_orders.large-orders" });
 * await sink.recover(outputLog, manifest.outputs?.["large-orders"]);
 * sink.open(101); sink.add(101, '{"orderId":"o-101"}'); sink.close(180);
 */
import type { PublishError } from "../src/core/errors.ts";
import type { Publisher } from "../src/log/publisher.ts";
import { batchMsgId, type InputRange, type OutputLog, rangesOf, recordCountHeader } from "../src/log/record-batch.ts";

const encoder = new TextEncoder();

/** A batch is closed early once it holds this many bytes (nats-server's max_payload is 1 MiB). */
export const maxBatchBytes = 256 * 1024;

/** A batch on its way: the stream sequence JetStream stored it under, once acknowledged. */
interface Sent {
  stored: number | undefined;
}

export class BatchedSink {
  #lines: string[] = [];
  #bytes = 0;
  #from = 0;
  /** Ranges published after the last checkpoint, found by the recovery; ascending by `from`. */
  #covered: readonly InputRange[] = [];
  #next = 0; // the first of #covered that may still hold an input to come
  #last: Sent | undefined;
  /** In a stream of its own: what the next batch names as the one before it. */
  #chain: { readonly lastSeq: number; previousId: string | undefined } | undefined;
  /** A batch that failed: the actor must recover (the publisher may have told another actor's flush). */
  #failed: PublishError | undefined;
  /** The stream sequence a recovery reads back from (recorded by each checkpoint). */
  readFrom = 0;

  /** The sink's step id: the name of its read-back start in a manifest's `outputs`. */
  get id(): string {
    return this.sink.id;
  }

  constructor(
    readonly publisher: Publisher,
    /** `<pipeline>/<sink>/<source>`: the Nats-Msg-Ids of this sink's batches start with it. */
    readonly prefix: string,
    readonly sink: { readonly id: string; readonly stream: string; readonly subject: string },
  ) {}

  /**
   * Read back what was published after the checkpoint (from stream sequence `from`; undefined: the
   * sink is new, start at the stream's end). What this process published before is awaited
   * first, so the read sees all of it.
   */
  async recover(log: OutputLog, from: number | undefined): Promise<void> {
    await this.publisher.flush().catch(() => undefined); // a failure was the failed actor's to report
    const { stream, subject } = this.sink;
    // Before the read-back: a batch stored after it then moves the stream's last sequence.
    const lastSeq = await log.soleSubject(stream, subject);
    this.#chain = lastSeq === undefined ? undefined : { lastSeq, previousId: undefined };
    this.#failed = undefined;
    this.readFrom = from ?? (await log.end(stream, subject));
    this.#covered = rangesOf(await log.msgIds(stream, subject, this.readFrom), this.prefix);
    this.#next = 0;
    this.#lines = [];
    this.#bytes = 0;
    this.#last = undefined;
  }

  /** A range of inputs starts at sequence `from`. */
  open(from: number): void {
    if (this.#lines.length === 0) this.#from = from;
  }

  /** An output of the input at `seq`, as JSON; dropped if a batch published before the recovery holds it. */
  add(input: number, json: string): void {
    const seq = Math.floor(input); // an entry of an edge's batch is numbered inside its message
    const covered = this.#covered;
    while (this.#next < covered.length && covered[this.#next]!.to < seq) this.#next++;
    const range = covered[this.#next];
    if (range && range.from <= seq) return;
    this.#lines.push(json);
    this.#bytes += json.length + 1;
  }

  /** The batch is at its size limit: close it after the current input. */
  get full(): boolean {
    return this.#bytes >= maxBatchBytes;
  }

  /** The range ends at sequence `to` (included): publish its outputs, if any, as one batch. */
  close(to: number): void {
    if (this.#failed) throw this.#failed;
    const lines = this.#lines;
    if (lines.length === 0) return;
    const sent: Sent = { stored: undefined };
    const msgId = batchMsgId(this.prefix, { from: this.#from, to });
    const headers: Record<string, string> = { [recordCountHeader]: String(lines.length) };
    const chain = this.#chain;
    if (chain?.previousId !== undefined) headers["Nats-Expected-Last-Msg-Id"] = chain.previousId;
    else if (chain) headers["Nats-Expected-Last-Sequence"] = String(chain.lastSeq);
    this.publisher.publish(this.sink.subject, encoder.encode(lines.join("\n")), {
      msgId,
      headers,
      onStored: (seq) => (sent.stored = seq),
      onFailed: (error) => (this.#failed ??= error),
    });
    if (chain) chain.previousId = msgId;
    this.#last = sent;
    this.#lines = [];
    this.#bytes = 0;
  }

  /**
   * A checkpoint's cut: returns what its manifest records once every batch published so far is
   * acknowledged (call it after the checkpoint's flush): the sequence after the last of them.
   */
  cut(): () => number {
    const last = this.#last;
    return () => {
      if (this.#failed) throw this.#failed; // its records must not be counted as sent
      return (this.readFrom = last?.stored === undefined ? this.readFrom : last.stored + 1);
    };
  }
}
