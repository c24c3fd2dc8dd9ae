/**
 * Balance: which live worker should own each partition, given who owns what now. Balanced (any
 * two workers' counts differ by at most one, per step and in all) and sticky (a partition whose
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
  const count = new Map(live.map((m) => [m, 0]));
  // Per step, so that every worker gets a share of every step (each step is its own load).
  const steps = new Map<string, Assignment[]>();
  for (const a of partitions) steps.set(a.step, [...(steps.get(a.step) ?? []), a]);
  for (const [, group] of [...steps].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const ordered = [...group].sort((a, b) => a.partition - b.partition);
    const base = Math.floor(ordered.length / live.length);
    let extra = ordered.length % live.length;
    // Who gets base + 1 in this step: those with the fewest partitions so far, so the totals even
    // out too; among equals, those holding more of this step now (fewer moves), then by id.
    const holding = new Map(live.map((m) => [m, 0]));
    for (const a of ordered) {
      const owner = owners.get(assignmentKey(a));
      if (owner !== undefined && holding.has(owner)) holding.set(owner, holding.get(owner)! + 1);
    }
    const byLoad = [...live].sort((a, b) =>
      count.get(a)! - count.get(b)! || holding.get(b)! - holding.get(a)! || (a < b ? -1 : 1)
    );
    const quota = new Map(byLoad.map((m) => [m, base + (extra-- > 0 ? 1 : 0)]));
    const held = new Map(live.map((m) => [m, 0]));
    const unplaced: Assignment[] = [];
    for (const a of ordered) {
      const owner = owners.get(assignmentKey(a));
      if (owner !== undefined && quota.has(owner) && held.get(owner)! < quota.get(owner)!) {
        target.set(assignmentKey(a), owner);
        held.set(owner, held.get(owner)! + 1);
      } else {
        unplaced.push(a);
      }
    }
    for (const a of unplaced) {
      const taker = byLoad.find((m) => held.get(m)! < quota.get(m)!)!;
      target.set(assignmentKey(a), taker);
      held.set(taker, held.get(taker)! + 1);
    }
    for (const m of live) count.set(m, count.get(m)! + held.get(m)!);
  }
  return target;
}
