/**
 * Balance: which live worker should own each partition, given who owns what now. The unit is a
 * partition number: partition q of every step goes to one worker (co-located, like Kafka Streams'
 * co-partitioned tasks), so that the worker reading partition q's subjects of a source or an edge
 * feeds every step's actor of q from them and nobody else needs to read them. Balanced (any two
 * workers' counts of partition numbers differ by at most one) and sticky (a partition number whose
 * owner is live stays where it is unless its owner holds more than its share). Every worker
 * computes the same answer from the same view, so no one has to hand out work.
 *
 * @example
 * balance([{ step: "revenue", partition: 0 }, { step: "revenue", partition: 1 }], ["w1", "w2"], new Map([["revenue.0", "w1"], ["revenue.1", "w1"]]));
 * // Map { "revenue.0" => "w1", "revenue.1" => "w2" }
 */
import { type Assignment, assignmentKey } from "../runtime/assignments.ts";

/**
 * The owner each partition should have. `owners` maps an assignment key to its current owner
 * (absent: free); owners not in `members` count as gone. With no members, the answer is empty.
 */
export function balance(
  partitions: readonly Assignment[],
  members: readonly string[],
  owners: ReadonlyMap<string, string>,
): Map<string, string> {
  const target = new Map<string, string>();
  const live = [...new Set(members)].sort();
  if (live.length === 0) return target;
  // The assignments of each partition number, and who holds most of them now (its owner).
  const units = new Map<number, Assignment[]>();
  for (const a of partitions) units.set(a.partition, [...(units.get(a.partition) ?? []), a]);
  const numbers = [...units.keys()].sort((a, b) => a - b);
  const current = new Map<number, string>();
  for (const q of numbers) {
    const held = new Map<string, number>();
    for (const a of units.get(q)!) {
      const owner = owners.get(assignmentKey(a));
      if (owner !== undefined && live.includes(owner)) held.set(owner, (held.get(owner) ?? 0) + 1);
    }
    const [owner] = [...held].sort(([a, n], [b, m]) => m - n || (a < b ? -1 : 1))[0] ?? [];
    if (owner !== undefined) current.set(q, owner);
  }
  const base = Math.floor(numbers.length / live.length);
  let extra = numbers.length % live.length;
  // Who gets base + 1: those holding more now (fewer moves), then by id.
  const holding = new Map(live.map((m) => [m, 0]));
  for (const owner of current.values()) holding.set(owner, holding.get(owner)! + 1);
  const byHolding = [...live].sort((a, b) => holding.get(b)! - holding.get(a)! || (a < b ? -1 : 1));
  const quota = new Map(byHolding.map((m) => [m, base + (extra-- > 0 ? 1 : 0)]));
  const held = new Map(live.map((m) => [m, 0]));
  const owner = new Map<number, string>();
  const unplaced: number[] = [];
  for (const q of numbers) {
    const now = current.get(q);
    if (now !== undefined && held.get(now)! < quota.get(now)!) {
      owner.set(q, now);
      held.set(now, held.get(now)! + 1);
    } else {
      unplaced.push(q);
    }
  }
  for (const q of unplaced) {
    const taker = byHolding.find((m) => held.get(m)! < quota.get(m)!)!;
    owner.set(q, taker);
    held.set(taker, held.get(taker)! + 1);
  }
  for (const q of numbers) for (const a of units.get(q)!) target.set(assignmentKey(a), owner.get(q)!);
  return target;
}
