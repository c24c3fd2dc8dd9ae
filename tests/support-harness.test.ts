/**
 * The harness the multi-process tests lean on, checked on its own: the TCP proxy passes, cuts and
 * restores connections; the lease-balance check tells a balanced group from one that is not; the
 * chromium launcher opens a page; the 3-node cluster elects a new stream leader when one stops.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { benchPipeline, ensureStream } from "../scripts/bench-common.ts";
import { Group } from "../src/cluster/group.ts";
import { launchChromium } from "./support/chromium.ts";
import { balancedOver, leaseHolders } from "./support/group-balance.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { useNatsCluster } from "./support/nats-cluster.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";

describe("test harness", () => {
  const nats = useNatsServer();

  it("the TCP proxy passes connections through, refuses them while cut, and again after restore", async () => {
    const proxy = await startTcpProxy({ port: Number(new URL(nats.url).port) });
    const dial = () => connect({ servers: proxy.url, reconnect: false, timeout: 1000 });
    try {
      const first = await dial();
      await first.flush();
      expect(proxy.accepted).toBe(1);
      proxy.cut("reset");
      await first.closed();
      await expect(dial()).rejects.toThrow();
      expect(proxy.refused).toBeGreaterThan(0);
      proxy.restore();
      const again = await dial();
      await again.flush();
      await again.close();
    } finally {
      await proxy.close();
    }
  });

  it(
    "the balance check sees two members sharing every partition number, and not one of them alone",
    { timeout: 30_000 },
    async () => {
      const nc = await nats.connect();
      await ensureStream(nc, "harness-events", "harness.events");
      const pipeline = () => benchPipeline("harness", "harness-events", "harness_totals", 4);
      const options = { checkpointMs: 100, memberTimeoutMs: 1000 };
      const a = await Group.join(nc, pipeline(), { ...options, member: { id: "a" } });
      const b = await Group.join(nc, pipeline(), { ...options, member: { id: "b" } });
      try {
        await waitFor(() => balancedOver(nc, "harness", ["a", "b"], 4), { timeoutMs: 20_000, message: "a and b balanced" });
        expect(await balancedOver(nc, "harness", ["a"], 4)).toBe(false);
        const held = await leaseHolders(nc, "harness");
        expect(held.get("a")!.length + held.get("b")!.length).toBe(4);
      } finally {
        await b.leave();
        await a.leave();
      }
    },
  );

  it("chromium opens a page", { timeout: 30_000 }, async () => {
    const chromium = await launchChromium();
    try {
      await chromium.page.setContent("<p id='x'>hello</p>");
      expect(await chromium.page.textContent("#x")).toBe("hello");
    } finally {
      await chromium.close();
    }
  });
});

describe("a 3-node cluster", () => {
  const cluster = useNatsCluster();

  it("elects another leader for an R3 stream when its leader stops, and takes the server back", { timeout: 90_000 }, async () => {
    const nc = await cluster.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "harness-r3", subjects: ["harness.r3"], num_replicas: 3 });
    const leader = await cluster.leaderOf("harness-r3");
    expect(cluster.nodes.map((n) => n.name)).toContain(leader);
    await cluster.kill(leader, "SIGTERM");
    const next = await cluster.leaderOf("harness-r3", { not: leader });
    expect(next).not.toBe(leader);
    await cluster.restart(leader);
    await cluster.waitForReplicas("harness-r3");
    expect(cluster.node(leader).server).toBeDefined();
  });
});
