/**
 * How fast can Eddy write acknowledged messages? Starts its own nats-server (file storage, temp
 * dir) and measures, each into a fresh stream or bucket:
 *   (a) js.publish with 2000 in flight, (b) kv.put pipelined 2000 deep,
 *   (c) the ack-counting Publisher into a stream, (d) the Publisher into KV subjects,
 * plus a core publish with no ack as the ceiling.
 *
 *   npx tsx scripts/publish-rates.ts [count=100000]
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createPublisher, kvSubject } from "../src/log/publisher.ts";

const count = Number(process.argv[2] ?? 100_000);
const window = 2000;
const enc = new TextEncoder();
const payload = (i: number) =>
  enc.encode(`{"orderId":"o-1-${i}","store":"store-${i % 5}","item":"latte","qty":2,"unitPrice":3.5,"ts":${1_700_000_000_000 + i}}`);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function connectWithin(port: number, ms: number): Promise<NatsConnection> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await connect({ servers: `127.0.0.1:${port}`, noAsyncTraces: true });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function timed(label: string, run: () => Promise<void>): Promise<void> {
  const start = performance.now();
  await run();
  const secs = (performance.now() - start) / 1000;
  console.log(`${label.padEnd(44)} ${Math.round(count / secs).toLocaleString("en").padStart(9)} msg/s  (${count} in ${secs.toFixed(2)} s)`);
}

const port = await freePort();
const dir = await mkdtemp(join(tmpdir(), "eddy-rates-"));
const server = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], { stdio: "ignore" });
try {
  const nc = await connectWithin(port, 10_000);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const kvm = new Kvm(nc);
  let n = 0;
  const stream = async () => {
    const name = `RATE${++n}`;
    await jsm.streams.add({ name, subjects: [`rate${n}.>`], duplicate_window: 600_000_000_000 });
    return `rate${n}`;
  };
  const check = async (name: string, want: number) => {
    const got = (await jsm.streams.info(name)).state.messages;
    if (got !== want) throw new Error(`${name}: ${got} messages, expected ${want}`);
  };

  {
    const prefix = await stream();
    await timed("core publish, no ack (ceiling)", async () => {
      for (let i = 0; i < count; i++) {
        nc.publish(`${prefix}.${i % 5}`, payload(i));
        if (i % window === window - 1) await nc.flush();
      }
      await nc.flush();
    });
  }
  {
    const prefix = await stream();
    await timed("(a) js.publish, 2000 in flight", async () => {
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < count; i++) {
        const p = js.publish(`${prefix}.${i % 5}`, payload(i), { msgID: `m-${i}` });
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= window) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    });
    await check(`RATE${n}`, count);
  }
  {
    const kv = await kvm.create("rates_a");
    await timed("(b) kv.put, 2000 in flight", async () => {
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < count; i++) {
        const p = kv.put(`k.${i}`, payload(i));
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= window) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    });
  }
  for (const withId of [true, false]) {
    const prefix = await stream();
    const publisher = createPublisher(nc);
    await timed(`(c) Publisher to a stream${withId ? ", with msg id" : ", no msg id"}`, async () => {
      for (let i = 0; i < count; i++) {
        publisher.publish(`${prefix}.${i % 5}`, payload(i), withId ? { msgId: `m-${i}` } : undefined);
        if (i % 1000 === 999) await publisher.whenPendingBelow();
      }
      await publisher.flush();
    });
    await check(`RATE${n}`, count);
    await publisher.close();
  }
  {
    const kv = await kvm.create("rates_b");
    const publisher = createPublisher(nc);
    await timed("(d) Publisher to KV subjects", async () => {
      for (let i = 0; i < count; i++) {
        publisher.publish(kvSubject("rates_b", `k.${i}`), payload(i));
        if (i % 1000 === 999) await publisher.whenPendingBelow();
      }
      await publisher.flush();
    });
    const values = (await kv.status()).values;
    if (values !== count) throw new Error(`rates_b: ${values} values, expected ${count}`);
    await publisher.close();
  }
  await nc.close();
} finally {
  server.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
}
