/**
 * Warming a partition before it moves here (Kafka Streams' warm-up tasks; the state is remote
 * already, so warming is only reading it): while its owner still runs it, the worker that is to
 * take it over follows the partition's keys in the state bucket (`<step>.<partition>.>`) and
 * decodes each chunk as it is written. At the handoff, the recovery takes the chunks its manifest
 * names from here once the watch has reached that manifest (src/state/checkpoint.ts): the pause is
 * the final checkpoint's delta, not the whole state read and decoded.
 *
 * @example
 * const warm = await WarmUp.start(nc, "eddy-state-shop", "revenue", 3, { clock }); // caught up
 * if (await warm.reached(manifestRevision, 2000)) warm.take("revenue.3.g2.b4.c7.s0"); // decoded
 * warm.stop();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Clock } from "../core/clock.ts";
import { BucketWatch } from "./bucket-watch.ts";
import { type ChunkRecords, decodeChunk } from "./keyed-state.ts";

export class WarmUp {
  readonly #chunks = new Map<string, ChunkRecords>();
  #bytes = 0;
  #watch: BucketWatch | undefined;

  private constructor(private readonly clock: Clock) {}

  /** Follow a partition's state keys; resolves once what the bucket holds of them is decoded. */
  static async start(
    nc: NatsConnection,
    bucket: string,
    step: string,
    partition: number,
    options: { readonly clock: Clock; readonly log?: ((event: string, fields: Record<string, unknown>) => void) | undefined },
  ): Promise<WarmUp> {
    const warm = new WarmUp(options.clock);
    const prefix = `${step}.${partition}.`;
    warm.#watch = await BucketWatch.open(nc, bucket, {
      name: "warm-up",
      key: `${prefix}>`,
      clock: options.clock,
      log: options.log,
      onEntry: (entry) => {
        if (entry.key === `${prefix}manifest`) return;
        if (entry.operation !== "PUT") return void warm.#chunks.delete(entry.key);
        try {
          warm.#chunks.set(entry.key, decodeChunk(entry.value));
          warm.#bytes += entry.value.length;
        } catch {
          warm.#chunks.delete(entry.key); // not a chunk: the recovery reads it and says what is wrong
        }
      },
    });
    return warm;
  }

  /** Chunks held, and the bytes decoded so far (for the log). */
  get size(): { readonly chunks: number; readonly bytes: number } {
    return { chunks: this.#chunks.size, bytes: this.#bytes };
  }

  /** Whether the watch delivered the bucket's entry at `revision` within `timeoutMs` (false: read it all instead). */
  async reached(revision: number, timeoutMs: number): Promise<boolean> {
    const clock = this.clock;
    let timer: unknown;
    const late = new Promise<false>((resolve) => (timer = clock.setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([this.#watch!.deliveredUpTo(revision).then(() => true as const), late]);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /** A chunk's base or delta under its key, decoded (undefined: not seen). */
  take(key: string): ChunkRecords | undefined {
    return this.#chunks.get(key);
  }

  stop(): void {
    this.#watch?.stop();
    this.#chunks.clear();
  }
}
