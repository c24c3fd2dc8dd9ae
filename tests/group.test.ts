/**
 * A group of workers shares a pipeline's partitions by leases in KV: one member alone holds every
 * partition; a second one joining gets half (only those move); a member leaving hands its
 * partitions back at once; one that goes silent loses them after the membership timeout. A
 * partition moves once its new owner has read its state (a warm-up), or after the warm-up's bound
 * when the new owner never says so. Every table stays exact throughout.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { Group, readGroup } from "../src/cluster/group.ts";
import { benchPipeline, ensureStream, publishEvents, totalsExact } from "../scripts/bench-common.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

describe("group", () => {
  const nats = useNatsServer();
  const keys = 40;
  const partitions = 6;
  const exact = (nc: NatsConnection, n: number) => totalsExact(nc, "group_totals", n, keys);
  const owned = (group: Group) => group.worker.assignments.map((a) => a.partition).sort((a, b) => a - b);

  it("balances partitions as members join and leave, sticky, counting every event once", { timeout: 90_000 }, async () => {
    const nc = await nats.connect();
    await ensureStream(nc, "group-events", "group.events");
    const pipeline = () => benchPipeline("grouped", "group-events", "group_totals", partitions);
    const options = { checkpointMs: 100, tableFlushMs: 50, memberTimeoutMs: 1000 };
    const a = await Group.join(nc, pipeline(), { ...options, member: { id: "a" } });
    const groups = [a];
    try {
      expect(owned(a)).toEqual([0, 1, 2, 3, 4, 5]);
      await publishEvents(nc, "group.events", 0, 2_000, keys);
      await waitFor(() => exact(nc, 2_000), { timeoutMs: 20_000, message: "one member counted all" });

      // b joins while events flow: half the partitions move to it, the rest stay with a.
      const more = publishEvents(nc, "group.events", 2_000, 6_000, keys);
      const b = await Group.join(nc, pipeline(), { ...options, member: { id: "b" } });
      groups.push(b);
      await waitFor(async () => {
        await Promise.all([a.settled(), b.settled()]);
        return owned(a).length === 3 && owned(b).length === 3;
      }, { timeoutMs: 20_000, message: "a and b hold three partitions each" });
      expect([...owned(a), ...owned(b)].sort()).toEqual([0, 1, 2, 3, 4, 5]);
      const group = await readGroup(nc, "grouped");
      expect(group?.members.map((m) => m.id)).toEqual(["a", "b"]);
      expect(Object.values(group!.owners).sort()).toEqual(["a", "a", "a", "b", "b", "b"]);
      await more;
      await waitFor(() => exact(nc, 6_000), { timeoutMs: 20_000, message: "every row exact after b joined" });

      // a leaves: a final checkpoint, its leases given back, b takes them at once (no timeout).
      const leftAt = Date.now();
      await a.leave();
      groups.shift();
      await waitFor(async () => (await b.settled(), owned(b).length === partitions), {
        timeoutMs: 20_000,
        message: "b holds every partition",
      });
      expect(Date.now() - leftAt, "taken over without waiting for the membership timeout").toBeLessThan(
        options.memberTimeoutMs + 2_000,
      );
      await publishEvents(nc, "group.events", 6_000, 8_000, keys);
      await waitFor(() => exact(nc, 8_000), { timeoutMs: 20_000, message: "every row exact after a left" });
    } finally {
      for (const g of groups) await g.leave();
    }
    expect(await exact(nc, 8_000)).toBe(true);
  });

  it("moves a partition once its new owner has its state warm, whose recovery then reads only the final delta", {
    timeout: 90_000,
  }, async () => {
    const nc = await nats.connect();
    await ensureStream(nc, "warm-events", "warm.events");
    const pipeline = () => benchPipeline("warmed", "warm-events", "warm_totals", partitions);
    const warmExact = (n: number) => totalsExact(nc, "warm_totals", n, 400);
    const logs: { member: string; event: string; fields: Record<string, unknown> }[] = [];
    const logAs = (member: string) => (event: string, fields: Record<string, unknown>) =>
      void logs.push({ member, event, fields });
    const options = { checkpointMs: 100, tableFlushMs: 50, memberTimeoutMs: 1000, warmUpMs: 2000 };
    const a = await Group.join(nc, pipeline(), { ...options, member: { id: "a" }, log: logAs("a") });
    const groups = [a];
    try {
      await publishEvents(nc, "warm.events", 0, 4_000, 400);
      await waitFor(() => warmExact(4_000), { timeoutMs: 20_000, message: "a counted all" });
      const more = publishEvents(nc, "warm.events", 4_000, 8_000, 400);
      const b = await Group.join(nc, pipeline(), { ...options, member: { id: "b" }, log: logAs("b") });
      groups.push(b);
      await waitFor(async () => {
        await Promise.all([a.settled(), b.settled()]);
        return owned(b).length === 3;
      }, { timeoutMs: 20_000, message: "b holds three partitions" });
      await more;
      await waitFor(() => warmExact(8_000), { timeoutMs: 20_000, message: "every row exact after the warm handoff" });
      const moved = owned(b).map((p) => `totals.${p}`);
      const index = (member: string, event: string, partition: string) =>
        logs.findIndex((l) =>
          l.member === member && l.event === event &&
          (l.fields.partition === partition || (l.fields.partitions as string[] | undefined)?.includes(partition))
        );
      for (const partition of moved) {
        expect(index("b", "partition-warm", partition), `b warmed ${partition}`).toBeGreaterThanOrEqual(0);
        expect(index("b", "partition-warm", partition), `${partition} warm before a let it go`)
          .toBeLessThan(index("a", "partitions-releasing", partition));
      }
      const used = logs.filter((l) => l.member === "b" && l.event === "warm-up-used");
      expect(used.map((l) => `${l.fields.step}.${l.fields.partition}`).sort()).toEqual(moved);
      for (const l of used) {
        expect(l.fields.reached).toBe(true);
        expect(l.fields.chunks).toBeGreaterThan(0);
      }
      expect(logs.some((l) => l.event === "warm-up-not-seen")).toBe(false);

      // c never warms (warm-ups off): a and b give it its share after their bound, not before.
      const joinedAt = Date.now();
      const c = await Group.join(nc, pipeline(), { ...options, member: { id: "c" }, warmUpMs: 0, log: logAs("c") });
      groups.push(c);
      await waitFor(async () => (await c.settled(), owned(c).length === 2), {
        timeoutMs: 30_000,
        message: "c holds two partitions",
      });
      expect(Date.now() - joinedAt, "given after the 2 s bound").toBeGreaterThanOrEqual(2_000);
      expect(logs.filter((l) => l.event === "warm-up-not-seen").map((l) => l.fields.to)).toContain("c");
      expect(logs.some((l) => l.member === "c" && l.event === "warm-up-used")).toBe(false);
      await publishEvents(nc, "warm.events", 8_000, 9_000, 400);
      await waitFor(() => warmExact(9_000), { timeoutMs: 20_000, message: "every row exact after the cold handoff" });
    } finally {
      for (const g of groups.reverse()) await g.leave();
    }
  });
});
