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
  readonly #inFlight = new Set<string>();
  readonly #waiting = new Map<string, Uint8Array>();
  #whenSettled: { resolve: () => void; reject: (e: unknown) => void }[] = [];
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
    if (this.#inFlight.has(subject)) {
      this.#waiting.set(subject, data);
      return;
    }
    this.#send(subject, data);
  }

  /** Resolves when no page put is in flight or waiting; rejects with the first put that failed. */
  settled(): Promise<void> {
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    if (this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.#whenSettled.push({ resolve, reject }));
  }

  #send(subject: string, data: Uint8Array): void {
    const expected = this.#stored.get(subject) ?? 0;
    this.#inFlight.add(subject);
    try {
      this.publisher.publish(subject, data, {
        headers: this.#learned ? { "Nats-Expected-Last-Subject-Sequence": String(expected) } : undefined,
        onStored: (seq) => {
          this.#stored.set(subject, seq);
          this.#done(subject);
        },
        onRefused: (error) => {
          if (error.err_code !== wrongLastSequence) return false;
          // Another writer's page is in its place: this writer's state is not the table's any more.
          // Its owner recovers (the failure fails its next checkpoint) and writes every page again;
          // a writer whose actor was let go or replaced hears nothing, and writes nothing more.
          this.#inFlight.delete(subject);
          this.#waiting.delete(subject);
          this.#fail(
            new PublishError({
              subject,
              message: `publish to ${subject}: another writer replaced the page (${error.description ?? "wrong last sequence"})`,
            }),
          );
          this.#wake();
          return true;
        },
        // Timed out or discarded: the publisher's flush reports it; nothing waits on this page.
        onFailed: () => {
          this.#inFlight.delete(subject);
          this.#waiting.delete(subject);
          this.#wake();
        },
      });
    } catch (error) {
      this.#inFlight.delete(subject);
      this.#waiting.delete(subject);
      if (!(error instanceof FencedError)) this.#fail(error);
      this.#wake();
    }
  }

  #done(subject: string): void {
    this.#inFlight.delete(subject);
    const next = this.#waiting.get(subject);
    if (next !== undefined) {
      this.#waiting.delete(subject);
      this.#send(subject, next);
    }
    this.#wake();
  }

  #fail(error: unknown): void {
    if (this.#whenSettled.length === 0) {
      this.#failure ??= error;
      return;
    }
    for (const w of this.#whenSettled.splice(0)) w.reject(error);
  }

  #wake(): void {
    if (this.#inFlight.size > 0) return;
    for (const w of this.#whenSettled.splice(0)) w.resolve();
  }
}
