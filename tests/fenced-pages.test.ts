/**
 * Table pages written under their stored sequence (src/state/fenced-pages.ts), against a real
 * nats-server: a previous owner's put that reaches the server after the new owner wrote the page
 * (a paused worker's socket buffer, sent when it resumes) is refused; one that lands before the new
 * owner's next put makes that put refused, and the owner's recovery writes over it; the latest of
 * several puts of one page is the one stored; waiting for the puts made so far is not held back by
 * the puts made after.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { createPublisher } from "../src/log/publisher.ts";
import { FencedPages } from "../src/state/fenced-pages.ts";
import { kvSubject } from "../src/core/names.ts";
import { useNatsServer } from "./support/nats.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("FencedPages", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await nats.connect();
  });
  const bucketOf = async (name: string) => {
    const kv = await new Kvm(nc).create(name, { history: 1 });
    const value = async (key: string) => {
      const e = await kv.get(key);
      return e ? dec.decode(e.value) : undefined;
    };
    return { kv, value };
  };
  const writer = async (bucket: string) => {
    const publisher = createPublisher(nc);
    const pages = new FencedPages(publisher, nc);
    await pages.learn(bucket, ["p.0.>", "i.0"]);
    return { publisher, pages };
  };

  it("refuses a previous owner's put that arrives after the new owner wrote the page", async () => {
    const { value } = await bucketOf("t-late");
    const page = kvSubject("t-late", "p.0.2.1");
    const old = await writer("t-late");
    old.pages.put(page, enc.encode("old-1"));
    await old.pages.settled();

    const owner = await writer("t-late");
    owner.pages.put(page, enc.encode("new-1"));
    await owner.pages.settled();
    // The old owner's socket buffer, sent as it resumes.
    old.pages.put(page, enc.encode("old-2"));
    await expect(old.pages.settled()).rejects.toThrow(/another writer replaced the page/);
    expect(await value("p.0.2.1")).toBe("new-1");
    // The owner goes on writing: its sequence is still the page's.
    owner.pages.put(page, enc.encode("new-2"));
    await owner.pages.settled();
    await owner.publisher.flush();
    expect(await value("p.0.2.1")).toBe("new-2");
  });

  it("refuses the owner's put over a previous owner's that landed after its recovery; recovering again writes over it", async () => {
    const { value } = await bucketOf("t-between");
    const page = kvSubject("t-between", "p.0.2.1");
    const old = await writer("t-between");
    old.pages.put(page, enc.encode("old-1"));
    await old.pages.settled();

    const owner = await writer("t-between");
    old.pages.put(page, enc.encode("old-2")); // lands between the owner's recovery and its next put
    await old.pages.settled();
    owner.pages.put(page, enc.encode("new-1"));
    await expect(owner.pages.settled()).rejects.toThrow(/another writer replaced the page/);
    expect(await value("p.0.2.1")).toBe("old-2");
    // The owner's checkpoint failed: it recovers, learning the sequences again, and writes every page.
    const recovered = await writer("t-between");
    recovered.pages.put(page, enc.encode("new-1"));
    await recovered.pages.settled();
    expect(await value("p.0.2.1")).toBe("new-1");
    old.pages.put(page, enc.encode("old-3"));
    await expect(old.pages.settled()).rejects.toThrow(/another writer/);
    expect(await value("p.0.2.1")).toBe("new-1");
  });

  it("stores the latest of many puts of a page, and a page never written before", async () => {
    const { value } = await bucketOf("t-many");
    const { publisher, pages } = await writer("t-many");
    for (let i = 0; i < 50; i++) {
      pages.put(kvSubject("t-many", "p.0.2.1"), enc.encode(`v-${i}`));
      pages.put(kvSubject("t-many", `p.0.2.${2 + (i % 3)}`), enc.encode(`w-${i}`));
    }
    pages.put(kvSubject("t-many", "i.0"), enc.encode("index"));
    await pages.settled();
    await publisher.flush();
    expect(await value("p.0.2.1")).toBe("v-49");
    expect([await value("p.0.2.2"), await value("p.0.2.3"), await value("p.0.2.4")]).toEqual(["w-48", "w-49", "w-47"]);
    expect(await value("i.0")).toBe("index");
  });

  it("settles the puts made before it, however busy the puts after it keep a page", async () => {
    const { value } = await bucketOf("t-busy");
    const { publisher, pages } = await writer("t-busy");
    pages.put(kvSubject("t-busy", "p.0.2.1"), enc.encode("checkpointed"));
    let settled = false;
    const done = pages.settled().then(() => (settled = true));
    // A steady flow of flushes of another page: one of its puts is always in flight or waiting.
    let flushes = 0;
    while (!settled && flushes < 2_000) {
      pages.put(kvSubject("t-busy", "p.0.2.2"), enc.encode(`flush-${flushes++}`));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await done;
    expect(settled).toBe(true);
    expect(flushes).toBeLessThan(2_000);
    expect(await value("p.0.2.1")).toBe("checkpointed");
    await pages.settled();
    await publisher.flush();
  });

  it("a put whose first attempt was stored, sent again (its ack lost), leaves the latest page", async () => {
    const { value } = await bucketOf("t-retry");
    const page = kvSubject("t-retry", "p.0.2.1");
    const { publisher, pages } = await writer("t-retry");
    pages.put(page, enc.encode("a"));
    await pages.settled();
    // The same put again under the sequence it replaced, as a re-send after a lost ack would be.
    const stale = createPublisher(nc);
    const refused: number[] = [];
    stale.publish(page, enc.encode("a-again"), {
      headers: { "Nats-Expected-Last-Subject-Sequence": "0" },
      onRefused: (e) => {
        refused.push(e.err_code ?? 0);
        return true;
      },
    });
    await stale.flush();
    expect(refused).toEqual([10071]);
    pages.put(page, enc.encode("b"));
    await pages.settled();
    await publisher.flush();
    expect(await value("p.0.2.1")).toBe("b");
  });
});
