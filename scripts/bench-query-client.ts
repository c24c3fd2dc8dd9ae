/**
 * The second process of the query-latency case (scripts/bench-serving.ts): an open-loop HTTP
 * client. Request i is due at start + i / rate; it is sent when due (whether or not earlier ones
 * have answered), and its latency is measured from when it was due, so a slow server cannot hide
 * its queueing (no coordinated omission). Keep-alive connections, one GET of one row by key each.
 * Prints `RESULT {"latenciesMs":[...],"errors":n,"sent":n}` on stdout.
 *
 *   node --import tsx scripts/bench-query-client.ts --url http://127.0.0.1:8080 --table t \
 *     --keys 10000 --rate 500 --seconds 20
 */
import { Agent, request } from "node:http";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const base = new URL(args.get("url")!);
const table = args.get("table")!;
const keys = Number(args.get("keys") ?? 10_000);
const rate = Number(args.get("rate") ?? 500);
const seconds = Number(args.get("seconds") ?? 20);
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const total = Math.round(rate * seconds);
const latencies: number[] = [];
let errors = 0;
const statuses: Record<string | number, number> = {};
let answered = 0;

function get(i: number, due: number): void {
  const key = `k-${(i * 7919) % keys}`;
  const req = request(
    { host: base.hostname, port: base.port, path: `/tables/${table}/rows/${key}`, agent, method: "GET" },
    (res) => {
      res.on("data", () => {});
      res.on("end", () => {
        if (res.statusCode === 200) latencies.push(performance.now() - due);
        else {
          errors++;
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
        }
        answered++;
      });
    },
  );
  req.on("error", (e: NodeJS.ErrnoException) => {
    errors++;
    statuses[e.code ?? "error"] = (statuses[e.code ?? "error"] ?? 0) + 1;
    answered++;
  });
  req.end();
}

const start = performance.now() + 20;
let next = 0;
await new Promise<void>((done) => {
  const tick = () => {
    const now = performance.now();
    while (next < total && start + (next * 1000) / rate <= now) {
      get(next, start + (next * 1000) / rate);
      next++;
    }
    if (next < total) setTimeout(tick, Math.max(0, start + (next * 1000) / rate - performance.now()));
    else done();
  };
  tick();
});
const deadline = performance.now() + 10_000;
while (answered < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
agent.destroy();
process.stdout.write(
  `RESULT ${
    JSON.stringify({
      latenciesMs: latencies,
      errors: errors + (total - answered),
      unanswered: total - answered,
      statuses,
      sent: total,
    })
  }\n`,
);
