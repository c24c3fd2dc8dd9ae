/**
 * How fast can Eddy write acknowledged messages? Starts its own nats-server (file storage, temp
 * store) and measures, each into a fresh stream or bucket:
 *   (a) js.publish with 2000 in flight, (b) kv.put pipelined 2000 deep,
 *   (c) the ack-counting Publisher into a stream, (d) the Publisher into KV subjects,
 * plus a core publish with no ack as the ceiling.
 *
 * Each measurement runs `rounds` times (interleaved); the median and best are printed, since this
 * 2-core machine is often shared with other work.
 *
 *   npx tsx scripts/publish-rates.ts [count=100000] [rounds=3]
 */
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createPublisher } from "../src/log/publisher.ts";
import { startNatsServer } from "../src/platform/nats-server.ts";
import { kvSubject } from "../src/core/names.ts";

const count = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 3);
const window = 2000;
const results = new Map<string, number[]>();
const enc = new TextEncoder();
const payload = (i: number) =>
  enc.encode(
    `{"orderId":"o-1-${i}","store":"store-${i % 5}","item":"latte","qty":2,"unitPrice":3.5,"ts":${1_700_000_000_000 + i}}`,
  );

async function timed(label: string, run: () => Promise<void>): Promise<void> {
  const start = performance.now();
  await run();
  const rate = count / ((performance.now() - start) / 1000);
  results.set(label, [...(results.get(label) ?? []), rate]);
}

function report(): void {
  const fmt = (r: number) => Math.round(r).toLocaleString("en").padStart(9);
  console.log(`${"".padEnd(54)} ${"median".padStart(9)} ${"best".padStart(9)}  msg/s, ${count} msgs x ${rounds} rounds`);
  for (const [label, rates] of results) {
    const sorted = [...rates].sort((a, b) => a - b);
    console.log(`${label.padEnd(54)} ${fmt(sorted[Math.floor(sorted.length / 2)] ?? 0)} ${fmt(sorted.at(-1) ?? 0)}`);
  }
}

const server = await startNatsServer(); // free port, temporary store removed by stop()
try {
  const nc = await connect({ servers: server.url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const kvm = new Kvm(nc);
  let n = 0;
  let buckets = 0;
  const stream = async () => {
    const name = `RATE${++n}`;
    await jsm.streams.add({ name, subjects: [`rate${n}.>`], duplicate_window: 600_000_000_000 });
    return `rate${n}`;
  };
  const check = async (name: string, want: number) => {
    const got = (await jsm.streams.info(name)).state.messages;
    if (got !== want) throw new Error(`${name}: ${got} messages, expected ${want}`);
  };

  for (let round = 0; round < rounds; round++) {
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
      const kv = await kvm.create(`rates_${++buckets}`);
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
    for (const [withId, inFlight] of [[true, 20_000], [true, window], [false, 20_000]] as const) {
      const prefix = await stream();
      const publisher = createPublisher(nc);
      await timed(`(c) Publisher to a stream, ${withId ? "msg id" : "no msg id"}, ${inFlight} in flight`, async () => {
        for (let i = 0; i < count; i++) {
          publisher.publish(`${prefix}.${i % 5}`, payload(i), withId ? { msgId: `m-${i}` } : undefined);
          if (i % 1000 === 999) await publisher.whenPendingBelow(inFlight);
        }
        await publisher.flush();
      });
      await check(`RATE${n}`, count);
      await publisher.close();
    }
    {
      const kv = await kvm.create(`rates_${++buckets}`);
      const publisher = createPublisher(nc);
      await timed("(d) Publisher to KV subjects, 20000 in flight", async () => {
        for (let i = 0; i < count; i++) {
          publisher.publish(kvSubject(`rates_${buckets}`, `k.${i}`), payload(i));
          if (i % 1000 === 999) await publisher.whenPendingBelow();
        }
        await publisher.flush();
      });
      const values = (await kv.status()).values;
      if (values !== count) throw new Error(`rates_${buckets}: ${values} values, expected ${count}`);
      await publisher.close();
    }
  }
  report();
  await nc.close();
} finally {
  await server.stop();
}
