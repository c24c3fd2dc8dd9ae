/**
 * The second process of the query-latency case (scripts/bench-serving.ts): an open-loop HTTP
 * client. Request i is due at start + i / rate; it is sent when due (whether or not earlier ones
 * have answered), and its latency is measured from when it was due, so a slow server cannot hide
 * its queueing (no coordinated omission). Keep-alive connections, one GET of one row by key each.
 *
 * Measuring from the due time also counts the client's own delays (its garbage collections, its
 * event loop, the OS not running it) as the server's; so the client is kept light, and measures
 * itself. It writes HTTP/1.1 requests on plain sockets and reads only the status line and
 * Content-Length of each answer (node:http's client cost ~300 µs of CPU a request, on a machine
 * the server shares); the request lines and the result arrays are made before the first is due.
 * It reports how late it sent (`sendLag`: send time minus due time), the latencies counted from
 * when it sent (`fromSend`, without that lateness), its event loop delay and its GC pauses
 * beside the latencies.
 *
 * Prints `RESULT {"latenciesMs":[...],"errors":n,"sent":n,"client":{...}}` on stdout.
 *
 *   node --import tsx scripts/bench-query-client.ts --url http://127.0.0.1:8080 --table t \
 *     --keys 10000 --rate 500 --seconds 20
 */
import { connect, type Socket } from "node:net";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const base = new URL(args.get("url")!);
const table = args.get("table")!;
const keys = Number(args.get("keys") ?? 10_000);
const rate = Number(args.get("rate") ?? 500);
const seconds = Number(args.get("seconds") ?? 20);
const maxConnections = 64;

const total = Math.round(rate * seconds);
const requests = Array.from(
  { length: total },
  (_, i) => Buffer.from(`GET /tables/${table}/rows/k-${(i * 7919) % keys} HTTP/1.1\r\nHost: ${base.host}\r\n\r\n`, "latin1"),
);
const latencies = new Float64Array(total).fill(Number.NaN);
const sendLag = new Float64Array(total);
const statuses: Record<string | number, number> = {};
let errors = 0;
let answered = 0;
const count = (status: string | number) => {
  errors++;
  statuses[status] = (statuses[status] ?? 0) + 1;
};

/** A keep-alive connection with at most one request in flight: the answer's status and body length are read, not its body. */
class Connection {
  readonly socket: Socket;
  /** The request in flight, or -1. */
  current = -1;
  due = 0;
  #pending: Buffer | undefined;
  /** Bytes of the current answer's body still to come, or -1 while its head is read. */
  #bodyLeft = -1;
  #status = 0;

  constructor(readonly onIdle: (c: Connection) => void) {
    this.socket = connect({ host: base.hostname, port: Number(base.port), noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.#read(chunk));
    this.socket.on("error", (e: NodeJS.ErrnoException) => this.#fail(e.code ?? "error"));
    this.socket.on("close", () => this.#fail("closed"));
  }

  send(i: number, due: number): void {
    this.current = i;
    this.due = due;
    this.socket.write(requests[i]!);
    sendLag[i] = performance.now() - due;
  }

  #read(chunk: Buffer): void {
    let data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = undefined;
    for (;;) {
      if (this.#bodyLeft < 0) {
        const end = data.indexOf("\r\n\r\n");
        if (end < 0) {
          this.#pending = data;
          return;
        }
        const head = data.toString("latin1", 0, end);
        this.#status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (!length) return this.#fail("no-content-length");
        this.#bodyLeft = Number(length[1]);
        data = data.subarray(end + 4);
      }
      if (data.length < this.#bodyLeft) {
        this.#bodyLeft -= data.length;
        return;
      }
      data = data.subarray(this.#bodyLeft);
      this.#bodyLeft = -1;
      this.#done();
      if (data.length === 0) return;
    }
  }

  #done(): void {
    const i = this.current;
    if (i < 0) return;
    if (this.#status === 200) latencies[i] = performance.now() - this.due;
    else count(this.#status);
    answered++;
    this.current = -1;
    this.onIdle(this);
  }

  #fail(kind: string): void {
    if (this.current >= 0) {
      count(kind);
      answered++;
      this.current = -1;
    }
    this.socket.destroy();
  }
}

const idle: Connection[] = [];
const open: Connection[] = [];
const onIdle = (c: Connection) => idle.push(c);
const connection = (): Connection | undefined => {
  while (idle.length > 0) {
    const c = idle.pop()!;
    if (!c.socket.destroyed) return c;
  }
  if (open.length >= maxConnections) return undefined;
  const c = new Connection(onIdle);
  open.push(c);
  return c;
};
for (let i = 0; i < 8; i++) idle.push(connection()!);

const loop = monitorEventLoopDelay({ resolution: 1 });
let gcMs = 0;
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcMaxMs = Math.max(gcMaxMs, entry.duration);
  }
}).observe({ entryTypes: ["gc"] });

await new Promise((r) => setTimeout(r, 200)); // the first connections are open
loop.enable();
const start = performance.now() + 20;
let next = 0;
/** Requests due while every connection was busy: sent as soon as one is free. */
const waiting: number[] = [];
await new Promise<void>((done) => {
  const tick = () => {
    const now = performance.now();
    while (next < total && start + (next * 1000) / rate <= now) waiting.push(next++);
    while (waiting.length > 0) {
      const c = connection();
      if (!c) break;
      const i = waiting.shift()!;
      c.send(i, start + (i * 1000) / rate);
    }
    if (next < total || waiting.length > 0) {
      setTimeout(tick, waiting.length > 0 ? 0 : Math.max(0, start + (next * 1000) / rate - performance.now()));
    } else done();
  };
  tick();
});
const deadline = performance.now() + 10_000;
while (answered < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
loop.disable();
for (const c of open) c.socket.destroy();

const sortedLag = Float64Array.from(sendLag).sort();
// Latency from when a request was written rather than due: without the client's lateness in sending.
const fromSend = Float64Array.from(latencies, (l, i) => l - sendLag[i]!).filter((l) => !Number.isNaN(l)).sort();
const at = (sorted: Float64Array, p: number) => Math.round(sorted[Math.floor(sorted.length * p)]! * 100) / 100;
const ms = (ns: number) => Math.round(ns / 1e4) / 100;
process.stdout.write(
  `RESULT ${
    JSON.stringify({
      latenciesMs: Array.from(latencies).filter((l) => !Number.isNaN(l)),
      errors: errors + (total - answered),
      unanswered: total - answered,
      statuses,
      sent: total,
      client: {
        sendLagP99Ms: at(sortedLag, 0.99),
        sendLagMaxMs: at(sortedLag, 1 - 1 / total),
        fromSendP50Ms: at(fromSend, 0.5),
        fromSendP99Ms: at(fromSend, 0.99),
        loopDelayP99Ms: ms(loop.percentile(99)),
        loopDelayMaxMs: ms(loop.max),
        gcMs: Math.round(gcMs),
        gcMaxMs: Math.round(gcMaxMs * 10) / 10,
        connections: open.length,
      },
    })
  }\n`,
);
