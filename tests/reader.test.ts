/**
 * The source reader (src/log/reader.ts) against a real nats-server: every message of the subject
 * from the start sequence, in order, once, in batches no larger than `maxBatch`; nothing handed
 * over while `beforeNext` holds reading back; pulls that expired while the stream was idle do not
 * stop it; and when its consumer disappears (deleted, or the server SIGKILLed and started again)
 * it recreates it from the last sequence it handed over, with no gap and no duplicate.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats } from "../src/log/connection.ts";
import { createPublisher } from "../src/log/publisher.ts";
import { type SourceMessage, startReader } from "../src/log/reader.ts";
import { type NatsServer, startNatsServer } from "../src/platform/nats-server.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Publish `{"n": from..to-1}` alternately to `<stream>.even` / `<stream>.odd` by n. */
async function publishRange(nc: NatsConnection, stream: string, from: number, to: number): Promise<void> {
  const publisher = createPublisher(nc);
  for (let n = from; n < to; n++) {
    publisher.publish(`${stream}.${n % 2 === 0 ? "even" : "odd"}`, enc.encode(JSON.stringify({ n })), {
      msgId: `${stream}-${n}`,
    });
    if (n % 1000 === 999) await publisher.whenPendingBelow(5000);
  }
  await publisher.close();
}

/** What a reader hands over, and a check that it came in order, once each. */
function collector() {
  const seqs: number[] = [];
  const values: number[] = [];
  const batchSizes: number[] = [];
  return {
    seqs,
    values,
    batchSizes,
    onBatch: (messages: SourceMessage[]) => {
      batchSizes.push(messages.length);
      for (const m of messages) {
        seqs.push(m.seq);
        values.push((JSON.parse(dec.decode(m.data)) as { n: number }).n);
      }
    },
  };
}

const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

describe("reader", () => {
  const nats = useNatsServer();

  it("reads one subject from a start sequence: in order, once each, in batches up to maxBatch", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "r1", subjects: ["r1.>"], storage: StorageType.File });
    await publishRange(nc, "r1", 0, 20_000);
    const got = collector();
    // Sequence 5,001 is n = 5,000 (even); the even ones from there on: 7,500 messages.
    const reader = await startReader(nc, { stream: "r1", subject: "r1.even", fromSeq: 5_001, maxBatch: 500, ...got });
    await waitFor(() => got.values.length >= 7_500, { timeoutMs: 30_000, message: "all even messages" });
    await reader.stop();
    expect(got.values).toEqual(Array.from({ length: 7_500 }, (_, i) => 5_000 + 2 * i));
    expect(got.seqs).toEqual(got.values.map((n) => n + 1));
    expect(Math.max(...got.batchSizes)).toBeLessThanOrEqual(500);
  });

  it("hands nothing over while beforeNext holds it back, then goes on where it was", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "r2", subjects: ["r2.>"], storage: StorageType.File });
    await publishRange(nc, "r2", 0, 10_000);
    const got = collector();
    let release: () => void = () => undefined;
    let holds = 0;
    const reader = await startReader(nc, {
      stream: "r2",
      fromSeq: 1,
      maxBatch: 1000,
      onBatch: got.onBatch,
      beforeNext: () => {
        if (holds++ > 0) return undefined;
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    await waitFor(() => got.values.length > 0, { message: "a first batch" });
    const first = got.values.length;
    // Give the held reader every chance to hand over more: a few round trips to the server.
    for (let i = 0; i < 5; i++) await nc.flush();
    expect(got.values.length).toBe(first);
    release();
    await waitFor(() => got.values.length >= 10_000, { timeoutMs: 30_000, message: "the rest" });
    await reader.stop();
    expect(got.values).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
  });

  it(
    "keeps reading after its pulls expired on an idle stream, and after its consumer was deleted",
    { timeout: 60_000 },
    async () => {
      const nc = await nats.connect();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "r3", subjects: ["r3.>"], storage: StorageType.File });
      await publishRange(nc, "r3", 0, 1_000);
      const got = collector();
      const resets: string[] = [];
      const reader = await startReader(nc, {
        stream: "r3",
        fromSeq: 1,
        heartbeatMs: 200, // pulls expire after 400 ms
        onReset: (reason) => resets.push(reason),
        ...got,
      });
      await waitFor(() => got.values.length >= 1_000, { message: "the first 1,000" });
      // Idle for more than one pull's expiry, by the server's own account: wait for a 408.
      const consumers = async () => (await jsm.consumers.list("r3").next()).map((c) => c.name);
      const [name] = await consumers();
      await waitFor(async () => (await jsm.consumers.info("r3", name!)).num_waiting > 0, { message: "a waiting pull" });
      const expiredAfter = Date.now() + 1_000;
      await waitFor(() => Date.now() > expiredAfter, { timeoutMs: 5_000, message: "pulls expired" });
      await publishRange(nc, "r3", 1_000, 2_000);
      await waitFor(() => got.values.length >= 2_000, { message: "read after the expiry" });
      expect(resets).toEqual([]);

      await jsm.consumers.delete("r3", name!);
      await publishRange(nc, "r3", 2_000, 3_000);
      await waitFor(() => got.values.length >= 3_000, { timeoutMs: 20_000, message: "read after the deletion" });
      await reader.stop();
      expect(resets.length).toBeGreaterThan(0);
      expect(got.values).toEqual(Array.from({ length: 3_000 }, (_, i) => i));
      expect(increasing(got.seqs)).toBe(true);
    },
  );
});

describe("reader across a server restart", () => {
  const storeDir = mkdtempSync(join(tmpdir(), "eddy-reader-"));
  const servers: NatsServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it(
    "recreates its consumer after a SIGKILL and restart, from the last sequence it handed over",
    { timeout: 60_000 },
    async () => {
      const first = await startNatsServer({ storeDir });
      servers.push(first);
      const nc = await connectNats({ url: first.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "r4", subjects: ["r4.>"], storage: StorageType.File });
      await publishRange(nc, "r4", 0, 5_000);
      const got = collector();
      const resets: string[] = [];
      const reader = await startReader(nc, {
        stream: "r4",
        fromSeq: 1,
        heartbeatMs: 300,
        onReset: (r) => resets.push(r),
        ...got,
      });
      await waitFor(() => got.values.length >= 5_000, { message: "before the restart" });
      first.kill("SIGKILL");
      await first.exited;
      const second = await startNatsServer({ storeDir, port: first.port });
      servers.push(second);
      // Publish once the connection is back (publishes while it reconnects would be buffered anyway).
      await waitFor(async () => (await jsm.streams.info("r4").then(() => true, () => false)), {
        timeoutMs: 20_000,
        message: "the stream answers again",
      });
      await publishRange(nc, "r4", 5_000, 8_000);
      await waitFor(() => got.values.length >= 8_000, { timeoutMs: 30_000, message: `after the restart (${resets.join(", ")})` });
      await reader.stop();
      expect(resets.length).toBeGreaterThan(0);
      expect(got.values).toEqual(Array.from({ length: 8_000 }, (_, i) => i));
      await nc.close();
    },
  );
});
