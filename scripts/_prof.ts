import { startNatsServer } from "/work/main/src/platform/nats-server.ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { createPublisher } from "/work/main/src/log/publisher.ts";
import { pipeline } from "/work/main/src/pipeline/pipeline.ts";
import { Worker } from "/work/main/src/runtime/worker.ts";
const s = await startNatsServer();
const nc = await connect({ servers: s.url, noAsyncTraces: true });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: "ev", subjects: ["ev.>"] });
const pub = createPublisher(nc);
const enc = new TextEncoder();
const N = 300_000, K = Number(process.env.KEYS ?? 100_000);
for (let i = 0; i < N; i++) { pub.publish("ev.x", enc.encode(JSON.stringify({ key: `k-${i % K}`, v: i % 100, ts: 1700000000000 + i }))); if (i % 5000 === 0) await pub.whenPendingBelow(10000); }
await pub.flush();
const p = pipeline("bench", { partitions: 8 });
p.source("ev", { stream: "ev", schema: Schema.Struct({ key: Schema.String, v: Schema.Number, ts: Schema.Number }) })
  .keyBy("k", "key").aggregate("agg", (a) => ({ n: a.count(), sum: a.sum("v") })).toTable("bench_t");
const t0 = performance.now();
const w = await Worker.start(nc, p, { checkpointMs: Number(process.env.CKPT ?? 1000) });
while (w.committedPosition("ev") < N) await new Promise((r) => setTimeout(r, 20));
const secs = (performance.now() - t0) / 1000;
console.log("events/s", Math.round(N / secs), "secs", secs.toFixed(2), "rss MB", Math.round(process.memoryUsage.rss() / 1e6));
await w.stop(); await nc.close(); await s.stop();
