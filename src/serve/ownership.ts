/**
 * Ownership as an observer sees it: from a group's members (with how long ago each was last heard)
 * and its leases, which members are live, who holds each partition, who should (the same balanced,
 * sticky assignment every member computes, src/cluster/balance.ts), and which partitions are on
 * the move. Pure: `eddy status` and the query API's `/groups` feed it what they read from the
 * group's bucket (src/serve/group-watch.ts).
 *
 * A move is in progress where the lease and the balance disagree:
 * - `releasing`: the holder is live but the balance gives the partition to another member (a member
 *   joined, or the holder has more than its share); the holder checkpoints it and gives it back;
 * - `taking`: the lease is free (given back) or its holder is gone (not heard from within its
 *   membership timeout); the member the balance names takes it.
 * With no live member nothing moves: a free partition then has neither owner nor target.
 *
 * @example
 * const seen = ownership(
 *   [{ id: "w1", host: "a", runtime: "node", pid: 1, startedAt: 0, ageMs: 300, timeoutMs: 5000 },
 *    { id: "w2", host: "b", runtime: "node", pid: 2, startedAt: 0, ageMs: 100, timeoutMs: 5000 }],
 *   new Map([["revenue.0", { owner: "w1", changedAgoMs: 9000, previousOwner: null }],
 *            ["revenue.1", { owner: "w1", changedAgoMs: 9000, previousOwner: null }]]),
 * );
 * seen.partitions[1]; // { step: "revenue", partition: 1, owner: "w1", target: "w2", move: "releasing", ... }
 */
import { balance } from "../cluster/balance.ts";
import { type Assignment, assignmentKey } from "../runtime/assignments.ts";

/** A member as last heard from. */
export interface MemberSeen {
  readonly id: string;
  readonly host: string;
  readonly runtime: string;
  readonly pid: number;
  /** When the member started (its own wall clock), if it said. */
  readonly startedAt: number | null;
  /** How long since its last heartbeat was seen. */
  readonly ageMs: number;
  /** Its membership timeout: silent for longer, it is gone. */
  readonly timeoutMs: number;
}

/** A partition's lease as last seen. */
export interface LeaseSeen {
  /** null: free (given back). */
  readonly owner: string | null;
  /** How long since the lease last changed hands (taken or given back). */
  readonly changedAgoMs: number;
  /** The holder before the current one (or, for a free lease, the last one), when it was seen. */
  readonly previousOwner: string | null;
}

export type Move = "releasing" | "taking";

export interface MemberOwnership extends MemberSeen {
  /** Heard from within its membership timeout. */
  readonly live: boolean;
  /** Partitions whose lease it holds. */
  readonly partitions: number;
  /** Partitions the balance gives it (equal to `partitions` once settled). */
  readonly share: number;
}

export interface PartitionOwnership {
  readonly step: string;
  readonly partition: number;
  /** The member holding its lease (null: free). */
  readonly owner: string | null;
  /** The member that should hold it (null: no member is live). */
  readonly target: string | null;
  /** The move in progress, if the lease and the balance disagree. */
  readonly move: Move | null;
  /** How long since its lease last changed hands (null: it never had a lease). */
  readonly changedAgoMs: number | null;
  readonly previousOwner: string | null;
}

export interface Ownership {
  /** Sorted by id. */
  readonly members: readonly MemberOwnership[];
  /** Sorted by step, then partition. */
  readonly partitions: readonly PartitionOwnership[];
  /** How many partitions are on the move. */
  readonly moves: number;
  /** Assignment key (`<step>.<partition>`) to the member holding its lease (as in GroupView). */
  readonly owners: Readonly<Record<string, string>>;
}

/** A lease's assignment key back to its step and partition (step ids hold no dots). */
export function assignmentOf(key: string): Assignment | undefined {
  const dot = key.lastIndexOf(".");
  const partition = Number(key.slice(dot + 1));
  if (dot <= 0 || !/^\d+$/.test(key.slice(dot + 1))) return undefined;
  return { step: key.slice(0, dot), partition };
}

/**
 * Who holds and who should hold each partition: every partition with a lease, and `known` ones
 * without (a manifest's, say).
 */
export function ownership(
  members: readonly MemberSeen[],
  leases: ReadonlyMap<string, LeaseSeen>,
  known: readonly Assignment[] = [],
): Ownership {
  const byKey = new Map<string, Assignment>();
  for (const key of leases.keys()) {
    const a = assignmentOf(key);
    if (a) byKey.set(key, a);
  }
  for (const a of known) byKey.set(assignmentKey(a), a);
  const all = [...byKey.values()].sort((a, b) => (a.step < b.step ? -1 : a.step > b.step ? 1 : a.partition - b.partition));
  const live = members.filter((m) => m.ageMs < m.timeoutMs).map((m) => m.id);
  const owners = new Map<string, string>();
  for (const [key, lease] of leases) if (lease.owner !== null && byKey.has(key)) owners.set(key, lease.owner);
  // As every member computes it: the owners that are gone count as none.
  const target = balance(all, live, new Map([...owners].filter(([, owner]) => live.includes(owner))));
  const partitions = all.map((a): PartitionOwnership => {
    const key = assignmentKey(a);
    const lease = leases.get(key);
    const owner = lease?.owner ?? null;
    const should = target.get(key) ?? null;
    let move: Move | null = null;
    if (should !== null && owner !== should) move = owner !== null && live.includes(owner) ? "releasing" : "taking";
    return {
      step: a.step,
      partition: a.partition,
      owner,
      target: should,
      move,
      changedAgoMs: lease?.changedAgoMs ?? null,
      previousOwner: lease?.previousOwner ?? null,
    };
  });
  const count = (of: (p: PartitionOwnership) => string | null, id: string) => partitions.filter((p) => of(p) === id).length;
  return {
    members: [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((m) => ({
      ...m,
      live: live.includes(m.id),
      partitions: count((p) => p.owner, m.id),
      share: count((p) => p.target, m.id),
    })),
    partitions,
    moves: partitions.filter((p) => p.move !== null).length,
    owners: Object.fromEntries(owners),
  };
}
