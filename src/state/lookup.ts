/**
 * Lookup tables: a KV bucket the user keeps (the coffee shop's menu: item to category and
 * price), replicated in memory through a KV watch (src/state/bucket-watch.ts: it starts again when its
 * consumer is lost) so that joining an event with it costs a Map lookup. Each value is JSON
 * decoded with the table's schema (any Standard Schema v1, or an effect Schema); a value that does
 * not match is left out of the replica and reported once, with the schema's issues.
 *
 * A join with a lookup table sees the table as it is when the event is processed (Flink's
 * processing-time lookup join): a replay after a restart joins with the table as it is then.
 *
 * @example
 * const menu = await LookupReplica.open(nc, "menu", MenuItem);
 * menu.get("latte"); // { category: "coffee", price: 3.5 }
 */
import { Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { Either } from "effect";
import { StreamError } from "../core/errors.ts";
import { type EventSchema, SchemaDecoder } from "../core/schema.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { BucketWatch } from "./bucket-watch.ts";

const decoder = new TextDecoder();

export class LookupReplica<V> {
  readonly #values = new Map<string, V>();
  #watch: BucketWatch | undefined;

  private constructor(readonly bucket: string) {}

  /** Open a replica of `bucket`; resolves once its current contents are loaded. */
  static async open<V>(
    nc: NatsConnection,
    bucket: string,
    schema: EventSchema<V> | SchemaDecoder<V>,
    onInvalid: (key: string, reason: string) => void = () => {},
    options: { readonly clock?: Clock; readonly log?: ((event: string, fields: Record<string, unknown>) => void) | undefined } =
      {},
  ): Promise<LookupReplica<V>> {
    const values = SchemaDecoder.of(`lookup table "${bucket}"`, schema);
    let kv;
    try {
      kv = await new Kvm(nc).open(bucket, { bindOnly: true });
      await kv.status();
    } catch (cause) {
      throw new StreamError({
        stream: `KV_${bucket}`,
        message: `the lookup table's KV bucket "${bucket}" does not exist`,
        hint: `create it and put its entries first (e.g. \`nats kv add ${bucket}\`), or fix the bucket name`,
        cause,
      });
    }
    const replica = new LookupReplica<V>(bucket);
    const apply = (entry: KvWatchEntry) => {
      if (entry.operation !== "PUT") return void replica.#values.delete(entry.key);
      let json: unknown;
      try {
        json = JSON.parse(decoder.decode(entry.value));
      } catch {
        onInvalid(entry.key, "not JSON");
        return void replica.#values.delete(entry.key);
      }
      const value = values.decode(json);
      if (Either.isRight(value)) replica.#values.set(entry.key, value.right);
      else {
        onInvalid(entry.key, value.left);
        replica.#values.delete(entry.key);
      }
    };
    replica.#watch = await BucketWatch.open(nc, bucket, {
      name: "lookup",
      clock: options.clock ?? systemClock,
      log: options.log,
      onEntry: apply,
    });
    return replica;
  }

  get(key: string | number): V | undefined {
    return this.#values.get(String(key));
  }

  get size(): number {
    return this.#values.size;
  }

  close(): void {
    this.#watch?.stop();
  }
}
