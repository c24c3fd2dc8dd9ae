/**
 * A group of workers shares a pipeline's partitions by leases in KV: one member alone holds every
 * partition; a second one joining gets half (only those move); a member leaving hands its
 * partitions back at once; one that goes silent loses them after the membership timeout. Every
 * table stays exact throughout.
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
});
