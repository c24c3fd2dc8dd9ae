import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createPublisher } from "../src/log/publisher.ts";
const mode = process.argv[2] ?? "id";
const dir = await mkdtemp(join(tmpdir(), "eddy-prof-"));
const port = 14000 + Math.floor(Math.random() * 1000);
const server = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 500));
const nc = await connect({ servers: `127.0.0.1:${port}`, noAsyncTraces: true });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: "P", subjects: ["p.>"] });
const enc = new TextEncoder();
const count = 200000;
const publisher = createPublisher(nc);
const c0 = process.cpuUsage(); const t0 = performance.now();
for (let i = 0; i < count; i++) {
  publisher.publish(`p.${i % 5}`, enc.encode(`{"orderId":"o-1-${i}","store":"store-1","item":"latte","qty":2,"unitPrice":3.5,"ts":${i}}`), mode === "id" ? { msgId: `m-${i}` } : mode === "hdr" ? { headers: { "X-Id": `m-${i}` } } : undefined);
  if (i % 1000 === 999) await publisher.whenPendingBelow(Number(process.argv[3] ?? 20000));
}
await publisher.flush();
const secs = (performance.now() - t0) / 1000; const cpu = process.cpuUsage(c0);
console.log(mode, Math.round(count / secs), "msg/s; client cpu", ((cpu.user + cpu.system) / 1e6 / secs * 100).toFixed(0) + "%");
const stat = (await import("node:fs")).readFileSync(`/proc/${server.pid}/stat`, "utf8").split(" ");
console.log("server cpu total s", (Number(stat[13]) + Number(stat[14])) / 100, "over", secs.toFixed(2));
await nc.close(); server.kill("SIGKILL"); await rm(dir, { recursive: true, force: true });
