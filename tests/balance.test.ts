/**
 * Balance, as a property over random groups: every partition gets a live owner, partition q of
 * every step the same one (co-located), counts of partition numbers differ by at most one, and a
 * member joining or leaving moves only as many partition numbers as it must.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { balance } from "../src/cluster/balance.ts";
import { type Assignment, assignmentKey } from "../src/runtime/assignments.ts";

const assignments = (steps: number, partitions: number): Assignment[] =>
  Array.from({ length: steps }, (_, s) => Array.from({ length: partitions }, (_, partition) => ({ step: `s${s}`, partition })))
    .flat();

/** Partition number to owner, checking co-location. */
function owners(all: readonly Assignment[], target: ReadonlyMap<string, string>): Map<number, string> {
  const byNumber = new Map<number, string>();
  for (const a of all) {
    const owner = target.get(assignmentKey(a))!;
    expect(owner).toBeDefined();
    if (byNumber.has(a.partition)) expect(owner).toBe(byNumber.get(a.partition));
    byNumber.set(a.partition, owner);
  }
  return byNumber;
}

describe("balance", () => {
  it("co-located, balanced, and sticky when a member joins or leaves", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 9 }),
        (steps, partitions, size) => {
          const all = assignments(steps, partitions);
          const members = Array.from({ length: size }, (_, i) => `w${i}`);
          const first = balance(all, members, new Map());
          const counts = (byNumber: Map<number, string>, live: string[]) =>
            live.map((m) => [...byNumber.values()].filter((o) => o === m).length);
          const before = owners(all, first);
          const c = counts(before, members);
          expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
          expect(balance(all, members, first)).toEqual(first);

          // One joins: only partition numbers the newcomer takes move.
          const joined = [...members, "new"];
          const after = owners(all, balance(all, joined, first));
          const moved = [...after].filter(([q, o]) => before.get(q) !== o);
          expect(moved.every(([, o]) => o === "new")).toBe(true);
          expect(moved.length).toBe(Math.floor(partitions / joined.length));

          // One leaves: only its partition numbers move.
          if (size > 1) {
            const left = members.slice(1);
            const rest = owners(all, balance(all, left, first));
            for (const [q, o] of before) if (o !== "w0") expect(rest.get(q)).toBe(o);
            const r = counts(rest, left);
            expect(Math.max(...r) - Math.min(...r)).toBeLessThanOrEqual(1);
          }
        },
      ),
    );
  });
});
