/**
 * A watch of a KV bucket (or of the keys under a filter) that outlives its consumer: every entry
 * once, in revision order, handed to `onEntry`. A group's members, a lookup table's replica and a
 * partition's warm-up follow their buckets with one. nats.js's KV watch is an ordered push
 * consumer with one replica; on a cluster, when the server holding that consumer stops (a leader
 * change), the watch stays silent until missed heartbeats reset it (about a minute, with its 30 s
 * heartbeat), and when it gives up it just ends. This one starts again after the last revision it
 * delivered, so nothing is missed or delivered twice, when its watch ends or fails, and when its
 * owner says it fell behind (`restart`: Membership notices its own heartbeat not coming back);
 * failed starts are retried with a bounded backoff, every step logged (`<name>-watch-restarting`).
 *
 * @example
 * const watch = await BucketWatch.open(nc, "eddy-group-shop", { name: "group", clock, onEntry: (e) => console.log(e.key) });
 * watch.restart("own heartbeat not seen"); // a new consumer from watch.revision + 1
 * watch.stop();
 */
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import type { Clock } from "../core/clock.ts";
import { newestRevision } from "./bucket.ts";

export interface BucketWatchOptions {
  /** What follows the bucket, naming its log events (`group`: `group-watch-restarting`). */
  readonly name: string;
  readonly clock: Clock;
  /** The keys to watch (a subject filter over keys; default every key). */
  readonly key?: string;
  /**
   * Each entry once, in revision order; `live`: it was written after the watch began (not one of
   * the entries the bucket held then).
   */
  readonly onEntry: (entry: KvWatchEntry, live: boolean) => void;
  readonly log?: ((event: string, fields: Record<string, unknown>) => void) | undefined;
}

/** Delays before the n-th start in a row that did not deliver anything (ms): the last one repeats. */
const backoffMs = [0, 250, 500, 1000, 2000];

export class BucketWatch {
  #revision = 0;
  /** The newest revision among the watched keys when the watch began. */
  #initial = 0;
  #current: QueuedIterator<KvWatchEntry> | undefined;
  /** Bumped by every (re)start: entries of a watch that was replaced are dropped. */
  #generation = 0;
  #stopped = false;
  /** Restarts since the last entry delivered. */
  #failures = 0;
  #reason = "";
  #restarting = false;
  #waiters: { revision: number; resolve: () => void }[] = [];
  #ended!: () => void;
  /** Resolves once the watch is stopped, or its bucket is gone. */
  readonly ended = new Promise<void>((resolve) => (this.#ended = resolve));

  private constructor(private readonly kv: KV, private readonly options: BucketWatchOptions) {}

  /**
   * Watch a bucket that exists; resolves once every entry it held when the watch began has been
   * delivered (a failure to start the first watch rejects).
   */
  static async open(nc: NatsConnection, bucket: string, options: BucketWatchOptions): Promise<BucketWatch> {
    const kv = await new Kvm(nc).open(bucket, { bindOnly: true });
    const watch = new BucketWatch(kv, options);
    const iterator = await kv.watch({ key: options.key ?? ">" });
    watch.#initial = await newestRevision(nc, bucket, options.key).catch((error) => {
      iterator.stop();
      throw error;
    });
    watch.#follow(iterator, watch.#generation);
    await watch.deliveredUpTo(watch.#initial);
    return watch;
  }

  /** The revision of the last entry delivered (0: none yet). */
  get revision(): number {
    return this.#revision;
  }

  /** Drop the current consumer and start another after the last revision delivered. */
  restart(reason: string): void {
    if (this.#stopped) return;
    this.#generation++;
    this.#current?.stop();
    this.#current = undefined;
    this.#reason = reason;
    if (this.#restarting) return; // the running start loop picks the new generation up
    this.#restarting = true;
    void this.#start();
  }

  stop(): void {
    this.#stopped = true;
    this.#generation++;
    this.#current?.stop();
    this.#current = undefined;
    this.#ended();
  }

  #follow(iterator: QueuedIterator<KvWatchEntry>, generation: number): void {
    this.#current = iterator;
    void (async () => {
      let why = "ended";
      try {
        for await (const entry of iterator) {
          if (generation !== this.#generation) break;
          if (entry.revision <= this.#revision) continue; // already delivered before a restart
          this.#revision = entry.revision;
          this.#failures = 0;
          this.options.onEntry(entry, entry.revision > this.#initial);
          this.#waiters = this.#waiters.filter((w) => (w.revision <= this.#revision ? (w.resolve(), false) : true));
        }
      } catch (error) {
        why = `failed: ${String(error)}`;
      }
      if (generation === this.#generation && !this.#stopped) this.restart(`the watch ${why}`);
    })();
  }

  /** Start consumers until one is running (or the watch is stopped), with a growing delay. */
  async #start(): Promise<void> {
    // No await between the loop's last check and clearing the flag: a restart() after that starts anew.
    while (!this.#stopped && this.#current === undefined) {
      const attempt = this.#failures++;
      const delayMs = backoffMs[Math.min(attempt, backoffMs.length - 1)]!;
      this.options.log?.(`${this.options.name}-watch-restarting`, {
        reason: this.#reason,
        attempt: attempt + 1,
        delayMs,
        fromRevision: this.#revision + 1,
      });
      if (delayMs > 0) await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, delayMs));
      if (this.#stopped) return;
      const generation = this.#generation;
      try {
        const iterator = await this.kv.watch({
          key: this.options.key ?? ">",
          ...(this.#revision > 0 ? { resumeFromRevision: this.#revision + 1 } : {}),
        });
        if (this.#stopped || generation !== this.#generation) {
          iterator.stop(); // restarted again meanwhile: start once more
          continue;
        }
        this.#follow(iterator, generation);
        this.options.log?.(`${this.options.name}-watch-restarted`, { fromRevision: this.#revision + 1, attempt: attempt + 1 });
      } catch (error) {
        if (/stream not found/i.test(String(error))) {
          this.options.log?.(`${this.options.name}-watch-ended`, { reason: "the bucket is gone" });
          this.stop();
        }
        this.#reason = `starting the watch failed: ${String(error)}`;
      }
    }
    this.#restarting = false;
  }

  /** Resolves once the entry at `revision` (or a later one) was delivered. */
  deliveredUpTo(revision: number): Promise<void> {
    if (this.#revision >= revision) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ revision, resolve }));
  }
}
