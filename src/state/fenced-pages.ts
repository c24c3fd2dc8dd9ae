/**
 * Result-table pages written under a fence of their own: every put names the stored sequence of
 * the page it replaces (`Nats-Expected-Last-Subject-Sequence`, what KV's `update` uses), learned
 * at recovery and from each put's ack. A worker paused with puts still in its socket buffer (Node
 * holds what the kernel would not take) sends them when it resumes, after its partitions moved:
 * each names a sequence the page no longer has once the new owner wrote it, and is refused. A put
 * of the owner that finds such a page in its place is refused too: the owner's next checkpoint
 * fails, and its recovery learns the sequences again and writes every page. One put per page is
 * in flight at a time: a newer page waits for the ack and replaces an older one waiting, as a
 * table page replaces the one before it.
 * See docs/ARCHITECTURE.md, "Writing pages".
 *
 * @example
 * const pages = new FencedPages(publisher, nc);
 * await pages.learn("eddy-table-totals", ["p.3.>", "i.3"]); // at recovery, after the lease is taken
 * pages.put(kvSubject("eddy-table-totals", "p.3.4.17"), page);
 * await pages.settled(); // every page put so far is stored (or a PublishError says why not)
 */
import { DeliverPolicy } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { FencedError, PublishError } from "../core/errors.ts";
import type { Publisher } from "../log/publisher.ts";
import { readStream } from "../log/streams.ts";
import { newestRevision } from "./bucket.ts";

/** JetStream's error code for a put whose expected last subject sequence is not the subject's. */
const wrongLastSequence = 10071;

export class FencedPages {
  /** Each page subject's stored sequence, as last seen (absent once learned: no message). */
  readonly #stored = new Map<string, number>();
  /** Whether the sequences were learned: until then a put replaces whatever is there. */
  #learned = false;
  /**
   * Every put gets the next ticket. A page in flight holds the oldest ticket its put answers for:
   * its own, or, sent after a wait, that of the first put that waited (the ones after it only
   * replaced its data).
   */
  #tickets = 0;
  readonly #inFlight = new Map<string, number>();
  readonly #waiting = new Map<string, { data: Uint8Array; since: number }>();
  #whenSettled: { upTo: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #failure: unknown;

  constructor(readonly publisher: Publisher, readonly nc: NatsConnection | undefined) {}

  /**
   * Learn the stored sequence of every page under `keyFilters` of table bucket `bucket` (one
   * headers-only read of the last message per subject each). Call it after taking ownership: a
   * put of the previous owner stored later is then one this owner's next put finds and replaces.
   */
  async learn(bucket: string, keyFilters: readonly string[]): Promise<void> {
    if (!this.nc) return;
    const stream = `KV_${bucket}`;
    for (const filter of keyFilters) {
      const subject = `$KV.${bucket}.${filter}`;
      if (!filter.includes("*") && !filter.includes(">")) {
        const seq = await newestRevision(this.nc, bucket, filter);
        if (seq > 0) this.#stored.set(subject, seq);
        continue;
      }
      await readStream(this.nc, stream, {
        filter_subjects: subject,
        deliver_policy: DeliverPolicy.LastPerSubject,
        headers_only: true,
      }, (m) => this.#stored.set(m.subject, m.seq));
    }
    this.#learned = true;
  }

  /** Forget the pages under `subjectPrefix` (purged: none is stored any more). */
  forget(subjectPrefix: string): void {
    for (const subject of this.#stored.keys()) if (subject.startsWith(subjectPrefix)) this.#stored.delete(subject);
  }

  /** Write `data` as the page at `subject`, now or once the put in flight for it is acknowledged. */
  put(subject: string, data: Uint8Array): void {
    const ticket = ++this.#tickets;
    if (!this.#inFlight.has(subject)) return this.#send(subject, data, ticket);
    this.#waiting.set(subject, { data, since: this.#waiting.get(subject)?.since ?? ticket });
  }

  /**
   * Resolves when every page put before the call is stored (or replaced by a later put that is);
   * rejects with the first put that failed. Puts made afterwards are not waited for, so a steady
   * flow of flushes cannot hold a checkpoint back.
   */
  settled(): Promise<void> {
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    const upTo = this.#tickets;
    if (this.#oldestPending() > upTo) return Promise.resolve();
    return new Promise((resolve, reject) => this.#whenSettled.push({ upTo, resolve, reject }));
  }

  #send(subject: string, data: Uint8Array, ticket: number): void {
    const expected = this.#stored.get(subject) ?? 0;
    this.#inFlight.set(subject, ticket);
    try {
      this.publisher.publish(subject, data, {
        headers: this.#learned ? { "Nats-Expected-Last-Subject-Sequence": String(expected) } : undefined,
        onStored: (seq) => {
          this.#stored.set(subject, seq);
          this.#inFlight.delete(subject);
          const next = this.#waiting.get(subject);
          this.#waiting.delete(subject);
          if (next) this.#send(subject, next.data, next.since);
          this.#wake();
        },
        onRefused: (error) => {
          if (error.err_code !== wrongLastSequence) return false;
          // Another writer's page is in its place: this writer's state is not the table's any more.
          // Its owner recovers (the failure fails its next checkpoint) and writes every page again;
          // a writer whose actor was let go or replaced hears nothing, and writes nothing more.
          this.#drop(
            subject,
            new PublishError({
              subject,
              message: `publish to ${subject}: another writer replaced the page (${error.description ?? "wrong last sequence"})`,
            }),
          );
          return true;
        },
        // Timed out or discarded: the publisher's flush reports it; nothing waits on this page.
        onFailed: () => this.#drop(subject, undefined),
      });
    } catch (error) {
      this.#drop(subject, error instanceof FencedError ? undefined : error);
    }
  }

  /** The page's put failed: nothing more is sent for it; `error`, if any, is what `settled` reports. */
  #drop(subject: string, error: unknown): void {
    this.#inFlight.delete(subject);
    this.#waiting.delete(subject);
    if (error !== undefined) this.#fail(error);
    this.#wake();
  }

  #fail(error: unknown): void {
    if (this.#whenSettled.length === 0) {
      this.#failure ??= error;
      return;
    }
    for (const w of this.#whenSettled.splice(0)) w.reject(error);
  }

  /** The oldest ticket a put in flight answers for (Infinity: none). */
  #oldestPending(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const ticket of this.#inFlight.values()) if (ticket < oldest) oldest = ticket;
    return oldest;
  }

  #wake(): void {
    if (this.#whenSettled.length === 0) return;
    const oldest = this.#oldestPending();
    this.#whenSettled = this.#whenSettled.filter((w) => {
      if (w.upTo >= oldest) return true;
      w.resolve();
      return false;
    });
  }
}
