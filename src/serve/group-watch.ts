/**
 * A pipeline's group as seen from outside it: a KV watch of its bucket (`eddy-group-<pipeline>`:
 * `members.<id>` heartbeats, `leases.<step>.<partition>`), kept in memory, so that any query
 * service (not only one beside a worker) and `eddy status` can say who is in the group, who holds
 * each partition and what is moving (src/serve/ownership.ts). It only reads.
 *
 * Ages are measured as the members measure each other's: from when this process saw an entry
 * arrive, by its own clock. Entries that were already in the bucket when the watch began are
 * dated by the server's timestamp of their write instead (compared with this machine's clock: the
 * one place two clocks meet, and only for what was written before this process looked).
 *
 * @example
 * const watch = await GroupWatch.open(nc, "coffee-shop"); // undefined: the pipeline has no group
 * watch?.answer().members; // [{ id: "w1", live: true, ageMs: 420, partitions: 12, ... }, ...]
 * watch?.close();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KvWatchEntry } from "@nats-io/kv";
import { type Clock, systemClock } from "../core/clock.ts";
import { groupBucket } from "../core/names.ts";
import type { Heartbeat } from "../cluster/membership.ts";
import type { Assignment } from "../runtime/assignments.ts";
import { BucketWatch } from "../state/bucket-watch.ts";
import { type LeaseSeen, type MemberSeen, type Ownership, ownership } from "./ownership.ts";

export interface GroupWatchOptions {
  readonly clock?: Clock;
  /** The membership timeout of members whose heartbeat does not say (default 5000 ms, `eddy run`'s). */
  readonly memberTimeoutMs?: number;
  /** Where the watch's restarts are told. */
  readonly log?: ((event: string, fields: Record<string, unknown>) => void) | undefined;
}

/** `GET /groups/:pipeline`: a group as this service sees it. */
export interface GroupAnswer extends Ownership {
  readonly pipeline: string;
  /** The member in this process, when a worker of this group runs in it (`eddy run --port`). */
  readonly self: string | null;
  /** This service's clock at the answer. */
  readonly at: number;
}

const decoder = new TextDecoder();

export class GroupWatch {
  readonly #members = new Map<string, { heartbeat: Heartbeat; seenAt: number }>();
  readonly #leases = new Map<string, { owner: string | null; changedAt: number; previousOwner: string | null }>();
  #watch: BucketWatch | undefined;

  private constructor(readonly pipeline: string, private readonly clock: Clock, private readonly timeoutMs: number) {}

  /**
   * Follow a pipeline's group; resolves once the bucket's contents are applied (undefined: it has
   * no group bucket). The watch starts again by itself when its consumer is lost.
   */
  static async open(nc: NatsConnection, pipeline: string, options: GroupWatchOptions = {}): Promise<GroupWatch | undefined> {
    const bucket = groupBucket(pipeline);
    const kv = await new Kvm(nc).open(bucket, { bindOnly: true });
    if (!(await kv.status().then(() => true, () => false))) return undefined;
    const clock = options.clock ?? systemClock;
    const group = new GroupWatch(pipeline, clock, options.memberTimeoutMs ?? 5000);
    group.#watch = await BucketWatch.open(nc, bucket, {
      name: "group",
      clock,
      log: options.log,
      onEntry: (entry, live) => {
        try {
          group.#apply(entry, live);
        } catch {
          // An entry that is not what members and leases write (not JSON): not a member or lease.
        }
      },
    });
    return group;
  }

  /** Resolves once the watch is closed, or the group's bucket is gone. */
  get ended(): Promise<void> {
    return this.#watch!.ended;
  }

  /**
   * The members, the partitions' owners and targets, and the moves in progress, as of now: every
   * partition with a lease, and the `known` ones without.
   */
  answer(self: string | null = null, known: readonly Assignment[] = []): GroupAnswer {
    const now = this.clock.now();
    const members: MemberSeen[] = [...this.#members.values()].map(({ heartbeat, seenAt }) => ({
      id: heartbeat.id,
      host: heartbeat.host,
      runtime: heartbeat.runtime,
      pid: heartbeat.pid,
      startedAt: heartbeat.startedAt ?? null,
      ageMs: Math.max(0, now - seenAt),
      timeoutMs: heartbeat.timeoutMs ?? this.timeoutMs,
    }));
    const leases = new Map<string, LeaseSeen>(
      [...this.#leases].map(([key, l]) => [key, {
        owner: l.owner,
        changedAgoMs: Math.max(0, now - l.changedAt),
        previousOwner: l.previousOwner,
      }]),
    );
    return { pipeline: this.pipeline, self, at: now, ...ownership(members, leases, known) };
  }

  close(): void {
    this.#watch?.stop();
  }

  /** One entry of the bucket; `live`: it arrived after the watch had read what the bucket held. */
  #apply(entry: KvWatchEntry, live: boolean): void {
    const now = this.clock.now();
    const at = live ? now : Math.min(now, entry.created.getTime());
    const put = entry.operation === "PUT";
    if (entry.key.startsWith("members.")) {
      const id = entry.key.slice("members.".length);
      if (put) this.#members.set(id, { heartbeat: JSON.parse(decoder.decode(entry.value)) as Heartbeat, seenAt: at });
      else this.#members.delete(id);
    } else if (entry.key.startsWith("leases.")) {
      const key = entry.key.slice("leases.".length);
      const owner = put ? ((JSON.parse(decoder.decode(entry.value)) as { owner?: string | null }).owner ?? null) : null;
      const known = this.#leases.get(key);
      if (known && known.owner === owner) return;
      this.#leases.set(key, {
        owner,
        changedAt: at,
        previousOwner: known ? (known.owner ?? known.previousOwner) : null,
      });
    }
  }
}
