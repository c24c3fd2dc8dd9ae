/**
 * The ack-counting Publisher against a real nats-server: every message acknowledged, duplicates
 * dropped by msg id, rejections and missing streams surfaced through flush(), overdue acks
 * re-published, KV puts readable by the KV client; subjects, headers and payloads (UTF-8, empty,
 * larger than 64 KiB) stored as sent, counted in nc.stats(), refused as nc.publish refuses them, and
 * headers refused on a server without header support; across a SIGKILL and restart of the server,
 * every message stored exactly once.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createPublisher, type PublishOptions } from "../src/log/publisher.ts";
import { PublishError } from "../src/core/errors.ts";
import { manualClock } from "../src/core/clock.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";
import { type NatsServer, startNatsServer } from "../src/platform/nats-server.ts";
import { kvSubject } from "../src/core/names.ts";

const enc = new TextEncoder();

// --- behaviour ----------------------------------------------------------------------------------

describe("Publisher", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    nc = await nats.connect();
    jsm = await jetstreamManager(nc);
  });
  const addStream = async (name: string, subjects: string[]) => {
    await jsm.streams.add({ name, subjects, duplicate_window: 600_000_000_000 });
  };
  const messages = async (stream: string) => (await jsm.streams.info(stream)).state.messages;

  it("acknowledges 50,000 messages, and re-publishing their msg ids adds none", async () => {
    await addStream("BULK", ["bulk.>"]);
    const publisher = createPublisher(nc);
    const publishAll = async () => {
      for (let i = 0; i < 50_000; i++) {
        publisher.publish(`bulk.${i % 10}`, enc.encode(`{"n":${i}}`), { msgId: `m-${i}` });
        if (i % 1000 === 999) await publisher.whenPendingBelow(10_000);
      }
      await publisher.flush();
    };
    await publishAll();
    expect(publisher.pending).toBe(0);
    expect(await messages("BULK")).toBe(50_000);

    await publishAll();
    expect(await messages("BULK")).toBe(50_000);
    await publisher.close();
  }, 60_000);

  it("tells onStored the stream sequence a message was stored under, a duplicate's included", async () => {
    await addStream("STORED", ["stored.>"]);
    const publisher = createPublisher(nc);
    const stored: number[] = [];
    for (const id of ["a", "b", "a"]) {
      publisher.publish("stored.x", enc.encode(id), { msgId: id, onStored: (seq) => stored.push(seq) });
    }
    publisher.publish("stored.x", enc.encode("c"));
    await publisher.flush();
    expect(stored).toEqual([1, 2, 1]);
    expect(await messages("STORED")).toBe(3);
    await publisher.close();
  });

  it("resolves concurrent flushes, each for what was published before it", async () => {
    await addStream("CONC", ["conc.>"]);
    const publisher = createPublisher(nc);
    for (let i = 0; i < 500; i++) publisher.publish("conc.a", enc.encode("x"));
    const first = publisher.flush();
    for (let i = 0; i < 500; i++) publisher.publish("conc.b", enc.encode("y"));
    const second = publisher.flush();
    await Promise.all([first, second, publisher.flush()]);
    expect(await messages("CONC")).toBe(1000);
    await publisher.close();
  });

  it("discards what it has not heard back about: nothing is sent again, a flush hears why", async () => {
    // No stream captures the subject yet: with retryNoResponders, the messages wait and are re-sent.
    const publisher = createPublisher(nc, { retryNoResponders: true, ackTimeoutMs: 200 });
    for (let i = 0; i < 10; i++) publisher.publish("later.a", enc.encode(String(i)));
    await waitFor(() => publisher.pending === 10, { message: "ten waiting" });
    const flushed = publisher.flush().then(() => "resolved", (e: unknown) => String(e));
    publisher.discardPending("the worker let its partitions go");
    expect(await flushed).toContain("the worker let its partitions go");
    expect(publisher.pending).toBe(0);
    // A stream that captures them now gets none of them: they are not re-sent.
    await addStream("LATER", ["later.>"]);
    publisher.publish("later.b", enc.encode("after"));
    await publisher.flush();
    expect(await messages("LATER")).toBe(1);
    await publisher.close();
  });

  it("rejects flush with a PublishError naming the subject when no stream captures it", async () => {
    const publisher = createPublisher(nc);
    publisher.publish("nostream.here", enc.encode("lost"));
    const error = await publisher.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).subject).toBe("nostream.here");
    expect((error as PublishError).message).toContain("nostream.here");
    expect((error as PublishError).message).toContain("503");
    // the failure was reported; the publisher carries on
    await addStream("LATER", ["later.>"]);
    publisher.publish("later.x", enc.encode("kept"));
    await publisher.flush();
    await publisher.close();
  });

  it("reports a failure that happened before flush was called to the next flush", async () => {
    const publisher = createPublisher(nc);
    publisher.publish("nostream.early", enc.encode("lost"));
    await waitFor(() => publisher.pending === 0);
    await expect(publisher.flush()).rejects.toThrow(/nostream\.early/);
    await publisher.flush(); // reported once
    await publisher.close();
  });

  it("rejects flush when JetStream answers with an error PubAck", async () => {
    await addStream("EXPECT", ["expect.>"]);
    const publisher = createPublisher(nc);
    publisher.publish("expect.a", enc.encode("x"), { headers: { "Nats-Expected-Stream": "OTHER" } });
    await expect(publisher.flush()).rejects.toThrow(/expect\.a failed: rejected by JetStream/);
    await publisher.close();
  });

  it("writes KV values the KV client reads back", async () => {
    const kv = await new Kvm(nc).create("totals");
    const publisher = createPublisher(nc);
    for (let i = 0; i < 100; i++) publisher.publish(kvSubject("totals", `store-${i % 5}.item-${i}`), enc.encode(`${i}`));
    publisher.publish(kvSubject("totals", "store-1.item-1"), enc.encode("overwritten"));
    await publisher.flush();
    const read = await new Kvm(nc).open("totals");
    expect((await read.get("store-3.item-8"))?.string()).toBe("8");
    expect((await read.get("store-1.item-1"))?.string()).toBe("overwritten");
    expect((await kv.status()).values).toBe(100); // history 1: the overwrite replaced its key
    expect(() => kvSubject("totals", ".bad")).toThrow(/invalid KV key/);
    await publisher.close();
  });

  it("re-publishes a message whose ack is overdue, with the same msg id", async () => {
    // A plain subscriber swallows the first attempt (no stream yet, so no PubAck and no 503).
    const seen: string[] = [];
    const silent = nc.subscribe("retry.>", {
      callback: (_e, m) => {
        seen.push(m.headers?.get("Nats-Msg-Id") ?? "");
      },
    });
    const clock = manualClock(0);
    const publisher = createPublisher(nc, { clock, ackTimeoutMs: 1000, retries: 3 });
    publisher.publish("retry.a", enc.encode("once"), { msgId: "r-1" });
    let flushed = false;
    const flushing = publisher.flush().then(() => (flushed = true));
    await waitFor(() => seen.length === 1);
    await addStream("RETRY", ["retry.>"]);

    clock.advance(999); // not overdue yet: nothing re-sent
    await nc.flush();
    expect(seen).toEqual(["r-1"]);
    expect(flushed).toBe(false);

    clock.advance(250); // overdue: re-published, now the stream acks it
    await flushing;
    expect(seen).toEqual(["r-1", "r-1"]);
    expect(await messages("RETRY")).toBe(1);
    silent.unsubscribe();
    await publisher.close();
  });

  it("fails a message after its retries run out", async () => {
    const silent = nc.subscribe("void.>", { callback: () => {} });
    const clock = manualClock(0);
    const publisher = createPublisher(nc, { clock, ackTimeoutMs: 100, retries: 2 });
    publisher.publish("void.a", enc.encode("x"), { msgId: "v-1" });
    const flushing = publisher.flush();
    for (let i = 0; i < 20; i++) clock.advance(25);
    await expect(flushing).rejects.toThrow(/void\.a failed: no ack after 3 attempts/);
    expect(publisher.pending).toBe(0);
    silent.unsubscribe();
    await publisher.close();
  });

  it("signals when pending drops below a threshold", async () => {
    await addStream("BACK", ["back.>"]);
    const publisher = createPublisher(nc, { maxPending: 100 });
    for (let i = 0; i < 1000; i++) publisher.publish("back.a", enc.encode("xy"));
    expect(publisher.pending).toBe(1000);
    expect(publisher.pendingBytes).toBe(2000);
    await publisher.whenPendingBelow();
    expect(publisher.pending).toBeLessThan(100);
    expect(publisher.pendingBytes).toBe(2 * publisher.pending);
    await publisher.flush();
    expect(publisher.pendingBytes).toBe(0);
    await publisher.close();
    expect(() => publisher.publish("back.a", enc.encode("x"))).toThrow(PublishError);
  });

  it("counts what it sends in nc.stats(): a message and its header and payload bytes each", async () => {
    await addStream("STATS", ["stats.>"]);
    const own = await nats.connect();
    const publisher = createPublisher(own);
    const before = own.stats();
    let bytes = 0;
    for (let i = 0; i < 1000; i++) {
      const data = enc.encode(`{"n":${i}}`);
      bytes += data.length;
      publisher.publish(`stats.${i % 3}`, data, i % 2 === 0 ? { msgId: `s-${i}` } : undefined);
    }
    await publisher.flush();
    const after = own.stats();
    expect(after.outMsgs - before.outMsgs).toBe(1000); // no re-publish: every ack came in time
    // Payloads, plus a header block for each of the 500 messages with a msg id.
    const withId = enc.encode("NATS/1.0\r\nNats-Msg-Id: s-0\r\n\r\n").length;
    expect(after.outBytes - before.outBytes).toBeGreaterThanOrEqual(bytes + 500 * withId);
    expect(after.outBytes - before.outBytes).toBeLessThan(bytes + 500 * (withId + 3));
    expect(await messages("STATS")).toBe(1000);
    await publisher.close();
  });

  it("writes messages the server stores as sent: headers, msg ids, UTF-8, empty and large payloads", async () => {
    await addStream("FRAMES", ["frames.>"]);
    const publisher = createPublisher(nc);
    const big = new Uint8Array(200 * 1024).map((_, i) => i % 251); // larger than the connection's 32 KiB flush threshold
    const sent: { subject: string; data: Uint8Array; opts: PublishOptions | undefined }[] = [
      { subject: "frames.a", data: enc.encode("plain"), opts: undefined },
      { subject: "frames.b", data: enc.encode('{"name":"Zoë ☕ 𝄞"}'), opts: { msgId: "id-é-1" } },
      { subject: "frames.c", data: new Uint8Array(0), opts: { msgId: "id-2", headers: { "X-Eddy": "yes", Other: "a b" } } },
      { subject: "frames.d", data: big, opts: { msgId: "id-3" } },
      { subject: "frames.a", data: enc.encode("after the big one"), opts: { headers: { "X-Only": "1" } } },
    ];
    for (const m of sent) publisher.publish(m.subject, m.data, m.opts);
    await publisher.flush();
    for (let i = 0; i < sent.length; i++) {
      const stored = await jsm.streams.getMessage("FRAMES", { seq: i + 1 });
      const m = sent[i]!;
      expect(stored?.subject).toBe(m.subject);
      expect(stored?.data).toEqual(m.data);
      expect(stored?.header.get("Nats-Msg-Id") || undefined).toBe(m.opts?.msgId);
      for (const [k, v] of Object.entries(m.opts?.headers ?? {})) expect(stored?.header.get(k)).toBe(v);
    }
    publisher.publish("frames.b", enc.encode("a duplicate"), { msgId: "id-é-1" });
    await publisher.flush();
    expect(await messages("FRAMES")).toBe(sent.length);
    await publisher.close();
  });

  it("refuses at once what nc.publish refuses: a header value with CR LF, a bad subject, too large a message, a closed connection", async () => {
    await addStream("REFUSE", ["refuse.>"]);
    const own = await nats.connect();
    const publisher = createPublisher(own);
    expect(() => publisher.publish("refuse.a", enc.encode("x"), { msgId: "a\r\nNats-Expected-Stream: other" })).toThrow(
      /CR or LF/,
    );
    expect(() => publisher.publish("refuse a", enc.encode("x"))).toThrow(/invalid subject/);
    const maxPayload = own.info!.max_payload;
    expect(() => publisher.publish("refuse.a", new Uint8Array(maxPayload + 1))).toThrow(/max_payload/);
    expect(publisher.pending).toBe(0);
    publisher.publish("refuse.a", enc.encode("fine"));
    await publisher.flush();
    expect(await messages("REFUSE")).toBe(1);
    await own.close();
    expect(() => publisher.publish("refuse.a", enc.encode("x"))).toThrow(/connection is closed/);
  });
});

describe("Publisher on a server without header support", () => {
  const configDir = mkdtempSync(join(tmpdir(), "eddy-no-headers-"));
  const config = join(configDir, "nats.conf");
  writeFileSync(config, "no_header_support: true\n");
  const nats = useNatsServer({ extraArgs: ["-c", config] });
  afterAll(() => rmSync(configDir, { recursive: true, force: true }));

  it("refuses a msg id or headers at once with a PublishError, and publishes without them", async () => {
    const nc = await nats.connect();
    expect(nc.info?.headers).toBeFalsy();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "PLAIN", subjects: ["plain.>"] });
    const publisher = createPublisher(nc);
    const refused = (() => {
      try {
        publisher.publish("plain.a", enc.encode("x"), { msgId: "p-1" });
      } catch (e) {
        return e;
      }
    })();
    expect(refused).toBeInstanceOf(PublishError);
    expect((refused as PublishError).subject).toBe("plain.a");
    expect((refused as PublishError).message).toMatch(/does not support headers/);
    expect(() => publisher.publish("plain.a", enc.encode("x"), { headers: { "X-Eddy": "1" } })).toThrow(
      /does not support headers/,
    );
    expect(publisher.pending).toBe(0);
    publisher.publish("plain.a", enc.encode("no headers"));
    await publisher.flush();
    expect((await jsm.streams.info("PLAIN")).state.messages).toBe(1);
    expect(nc.isClosed()).toBe(false); // nothing the server would have closed the connection for was sent
    await publisher.close();
  });
});

describe("Publisher across a nats-server restart", () => {
  const storeDir = mkdtempSync(join(tmpdir(), "eddy-publisher-restart-"));
  const servers: NatsServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it("stores every message exactly once through a SIGKILL and restart mid-stream", { timeout: 120_000 }, async () => {
    const first = await startNatsServer({ storeDir });
    servers.push(first);
    const nc = await connect({ servers: first.url, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "RESTART", subjects: ["restart.>"], duplicate_window: 600_000_000_000 }); // file storage
      const publisher = createPublisher(nc, { ackTimeoutMs: 1_000, retries: 60 });
      const total = 30_000;
      const outBefore = nc.stats().outMsgs;
      let restarted: Promise<void> | undefined;
      let pendingAtKill = 0;
      for (let i = 0; i < total; i++) {
        publisher.publish(`restart.${i % 4}`, enc.encode(JSON.stringify({ n: i })), { msgId: `restart-${i}` });
        if (i % 500 !== 499) continue;
        if (i === total / 2 - 1) {
          pendingAtKill = publisher.pending; // at least the 500 just written: no ack can arrive before we yield
          first.kill("SIGKILL");
          restarted = (async () => {
            await first.exited;
            servers.push(await startNatsServer({ storeDir, port: first.port }));
          })();
        }
        // A high mark: publishing goes on into the dead connection for a while before it waits.
        await publisher.whenPendingBelow(6_000);
      }
      await restarted;
      await publisher.flush();
      expect(pendingAtKill).toBeGreaterThanOrEqual(500);
      expect(publisher.pending).toBe(0);
      expect(nc.stats().outMsgs - outBefore).toBeGreaterThanOrEqual(total);

      let stored: { n: number }[] = [];
      await waitFor(async () => ((stored = await readStreamJson<{ n: number }>(nc, "RESTART")), true), {
        timeoutMs: 20_000,
        message: "the stream readable after the restart",
      });
      const seen = new Map<number, number>();
      for (const { n } of stored) seen.set(n, (seen.get(n) ?? 0) + 1);
      const missing = Array.from({ length: total }, (_, n) => n).filter((n) => !seen.has(n));
      const twice = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
      expect({ missing: missing.slice(0, 10), twice: twice.slice(0, 10) }).toEqual({ missing: [], twice: [] });
      expect(stored.length).toBe(total);
      expect((await jsm.streams.info("RESTART")).state.messages).toBe(total);
      await publisher.close();
    } finally {
      await nc.close();
    }
  });
});
