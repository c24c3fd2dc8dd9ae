/**
 * Ownership as an observer computes it from a group's members and leases (src/serve/ownership.ts):
 * a settled group has no moves; a member joining makes the partitions it should get `releasing`
 * by their holders; a free lease, or one whose holder went silent past its membership timeout, is
 * `taking` by the member the balance names; with no live member nothing moves. Pure: no server.
 */
import { describe, expect, it } from "vitest";
import { assignmentOf, type LeaseSeen, type MemberSeen, ownership } from "../src/serve/ownership.ts";

const member = (id: string, ageMs = 200, timeoutMs = 5000): MemberSeen => ({
  id,
  host: `host-${id}`,
  runtime: "node",
  pid: 1,
  startedAt: 0,
  ageMs,
  timeoutMs,
});
const held = (owner: string | null, previousOwner: string | null = null): LeaseSeen => ({
  owner,
  changedAgoMs: 1000,
  previousOwner,
});
const leases = (entries: Record<string, LeaseSeen>) => new Map(Object.entries(entries));
const moves = (o: ReturnType<typeof ownership>) =>
  o.partitions.filter((p) => p.move).map((p) => `${p.step}.${p.partition} ${p.move} ${p.owner ?? "-"}>${p.target}`);

describe("ownership", () => {
  it("a settled group: owners are the targets, no moves, shares equal holdings", () => {
    const o = ownership(
      [member("w2"), member("w1")],
      leases({ "agg.0": held("w1"), "agg.1": held("w2"), "agg.2": held("w1"), "agg.3": held("w2") }),
    );
    expect(o.moves).toBe(0);
    expect(o.members.map((m) => [m.id, m.live, m.partitions, m.share])).toEqual([["w1", true, 2, 2], ["w2", true, 2, 2]]);
    expect(o.owners).toEqual({ "agg.0": "w1", "agg.1": "w2", "agg.2": "w1", "agg.3": "w2" });
    expect(o.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
  });

  it("a member joining: the partitions it should get are releasing by their holder, the others stay", () => {
    const o = ownership(
      [member("w1"), member("w2", 0)],
      leases({ "agg.0": held("w1"), "agg.1": held("w1"), "agg.2": held("w1"), "agg.3": held("w1") }),
    );
    expect(o.moves).toBe(2);
    expect(moves(o)).toEqual(["agg.2 releasing w1>w2", "agg.3 releasing w1>w2"]);
    expect(o.members.map((m) => [m.id, m.partitions, m.share])).toEqual([["w1", 4, 2], ["w2", 0, 2]]);
  });

  it("a free lease, and one whose holder is silent past its timeout, are taking; a late but live holder keeps its own", () => {
    const o = ownership(
      [member("w1", 200), member("w2", 4_000), member("w3", 2_500, 2_000)],
      leases({ "agg.0": held("w1"), "agg.1": held(null, "w2"), "agg.2": held("w2"), "agg.3": held("w3") }),
    );
    expect(o.members.map((m) => [m.id, m.live])).toEqual([["w1", true], ["w2", true], ["w3", false]]);
    expect(moves(o)).toEqual(["agg.1 taking ->w1", "agg.3 taking w3>w2"]);
    expect(o.partitions.find((p) => p.partition === 1)?.previousOwner).toBe("w2");
    // A holder that left the group altogether (its entry deleted) is gone too.
    expect(moves(ownership([member("w1")], leases({ "agg.0": held("w9") })))).toEqual(["agg.0 taking w9>w1"]);
  });

  it("no live member: nothing moves, and partitions known only from manifests are listed", () => {
    const o = ownership([member("w1", 9_000)], leases({ "agg.0": held("w1") }), [{ step: "agg", partition: 1 }]);
    expect(o.moves).toBe(0);
    expect(o.partitions.map((p) => [p.partition, p.owner, p.target, p.move, p.changedAgoMs])).toEqual([
      [0, "w1", null, null, 1000],
      [1, null, null, null, null],
    ]);
  });

  it("balances per step", () => {
    const o = ownership(
      [member("a"), member("b")],
      leases({ "x.0": held("a"), "x.1": held("a"), "y.0": held("a"), "y.1": held("a") }),
    );
    expect(o.members.map((m) => m.share)).toEqual([2, 2]);
    expect(new Set(o.partitions.filter((p) => p.target === "b").map((p) => p.step))).toEqual(new Set(["x", "y"]));
    expect(assignmentOf("store-revenue.12")).toEqual({ step: "store-revenue", partition: 12 });
    expect(assignmentOf("nonsense")).toBeUndefined();
  });
});
