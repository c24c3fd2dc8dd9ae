/**
 * Leases: who owns each partition of a pipeline, one KV entry per (step, partition) under
 * `leases.<step>.<partition>` in the group's bucket, taken and given back with compare-and-set on
 * the entry's revision. The revision a worker took a lease at is its fencing token: a worker
 * that lost a lease fails its next compare-and-set, and the new owner's recovery bumps the
 * partition's manifest generation, which fails any commit of the old one.
 *
 * The group's watch of its bucket (src/state/bucket-watch.ts) hands this its entries (`apply`).
 *
 * @example
 * const leases = new Leases(kv, { onChange });
 * const watch = await BucketWatch.open(nc, bucket, { name: "group", clock, onEntry: (e) => leases.apply(e) });
 * await leases.take({ step: "revenue", partition: 3 }, "w1"); // true: w1 holds it now
 * leases.ownerOf({ step: "revenue", partition: 3 }); // "w1"
 * await leases.release({ step: "revenue", partition: 3 }, "w1");
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { type Assignment, assignmentKey } from "../runtime/assignments.ts";

interface Lease {
  /** null: released. */
  readonly owner: string | null;
  readonly at: number;
}

export const leaseKey = (a: Assignment): string => `leases.${assignmentKey(a)}`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Leases {
  /** Assignment key to its lease and the lease entry's revision (0: no entry). */
  readonly #leases = new Map<string, { owner: string | null; revision: number }>();

  constructor(readonly kv: KV, private readonly options: { readonly onChange: () => void }) {}

  /** The owner of a partition, as last seen (undefined: nobody). */
  ownerOf(a: Assignment): string | undefined {
    return this.#leases.get(assignmentKey(a))?.owner ?? undefined;
  }

  /** Every partition with an owner, by assignment key. */
  owners(): Map<string, string> {
    const owners = new Map<string, string>();
    for (const [key, lease] of this.#leases) if (lease.owner !== null) owners.set(key, lease.owner);
    return owners;
  }

  /**
   * Take a partition's lease, if it is still as last seen (free, or held by a member now gone):
   * compare-and-set on that revision. False when someone else changed it first.
   */
  async take(a: Assignment, owner: string): Promise<boolean> {
    const known = this.#leases.get(assignmentKey(a));
    return this.#write(a, owner, known?.revision ?? 0);
  }

  /** Give back a lease this worker holds (false: it was not its own any more). */
  async release(a: Assignment, owner: string): Promise<boolean> {
    const known = this.#leases.get(assignmentKey(a));
    if (!known || known.owner !== owner) return false;
    return this.#write(a, null, known.revision);
  }

  /** Read a lease from the server (not the watch): who holds it now. */
  async read(a: Assignment): Promise<string | null> {
    const entry = await this.kv.get(leaseKey(a));
    if (!entry || entry.operation !== "PUT") return null;
    return (JSON.parse(decoder.decode(entry.value)) as Lease).owner;
  }

  async #write(a: Assignment, owner: string | null, revision: number): Promise<boolean> {
    const bytes = encoder.encode(JSON.stringify({ owner, at: Date.now() } satisfies Lease));
    try {
      const next = revision === 0 ? await this.kv.create(leaseKey(a), bytes) : await this.kv.update(leaseKey(a), bytes, revision);
      const known = this.#leases.get(assignmentKey(a));
      if (!known || known.revision < next) this.#leases.set(assignmentKey(a), { owner, revision: next });
      return true;
    } catch (error) {
      const message = String(error);
      if (message.includes("wrong last sequence") || message.includes("key exists")) return false;
      throw error;
    }
  }

  /** An entry under `leases.` from the group's watch. */
  apply(entry: KvWatchEntry): void {
    const key = entry.key.slice("leases.".length);
    const known = this.#leases.get(key);
    if (known && known.revision >= entry.revision) return;
    const owner = entry.operation === "PUT" ? (JSON.parse(decoder.decode(entry.value)) as Lease).owner : null;
    this.#leases.set(key, { owner, revision: entry.revision });
    if (known?.owner !== owner) this.options.onChange();
  }
}
