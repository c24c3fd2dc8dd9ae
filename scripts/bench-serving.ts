/**
 * The serving cases of the benchmark, run from scripts/bench.ts (`--cases query-latency,freshness`):
 *
 *   query-latency  p50/p99 of query-API reads of one row, at `--query-rate` requests/s (default 500)
 *                  from a second process (scripts/bench-query-client.ts, open loop: latency counts
 *                  from when a request was due), while the pipeline ingests `--ingest-rate` events/s;
 *                  beside it the floor: the same client against a bare node:http server answering
 *                  the same bytes (scripts/bench-bare-server.ts), under the same ingest
 *   freshness      time from an event's publish to its effect being visible through the API: probe
 *                  events (one in 200) raise the count of row "probe"; a Server-Sent Events client
 *                  of `/tables/<t>/changes?key=probe` sees the count reach each probe's number
 *
 * Both are measured together in one phase, as a user runs it: `eddy run` (a real CLI process, default
 * settings: checkpoint 1 s, table flush 100 ms) over the bench pipeline (count + sum per key, 10,000
 * keys), and beside it the query service `eddy serve` (its own process, as dashboards are served:
 * the pipeline's batches never hold up a read); this process publishes on schedule and follows
 * the probe row through the service.
 *
 * @example
 * const cases = await servingCases({ nc, natsUrl, wanted, seconds: 20, queryRate: 500, ingestRate: 10_000, log });
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/nats-core";
import { createPublisher } from "../src/log/publisher.ts";
import { progress } from "../src/cli/progress.ts";
import { benchPipeline, ensureStream, eventBytes, publishEvents, round } from "./bench-common.ts";

const STREAM = "bench-serving";
const SUBJECT = "bench.serving";
const TABLE = "bench_serving_totals";
const KEYS = 10_000;
const PROBE_KEY = "probe";
const PROBE_EVERY = 200;
const WARMUP_MS = 3000;
const floorSeconds = 10;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The pipeline `eddy run scripts/bench-serving.ts --export servingPipeline` runs. */
export function servingPipeline() {
  return benchPipeline("bench-serving", STREAM, TABLE);
}

export interface ServingOptions {
  readonly nc: NatsConnection;
  readonly natsUrl: string;
  readonly wanted: ReadonlySet<string>;
  readonly seconds: number;
  readonly queryRate: number;
  readonly ingestRate: number;
  readonly log: (line: string) => void;
}

type CaseResult = Record<string, unknown>;

const encoder = new TextEncoder();
const probeBytes = (n: number) =>
  encoder.encode(`{"key":"${PROBE_KEY}","v":0,"ts":${1_704_067_200_000 + n},"note":"probe-${n}"}`);

export async function servingCases(o: ServingOptions): Promise<Record<string, CaseResult>> {
  const { nc, log } = o;
  await ensureStream(nc, STREAM, SUBJECT);
  await publishEvents(nc, SUBJECT, 0, KEYS, KEYS); // every key has a row before reads start
  const eddy = startEddy(["run", "scripts/bench-serving.ts", "--export", "servingPipeline"], "running", o.natsUrl, log);
  // The service replicates only this case's table (the bench's other tables hold up to 1M rows).
  const service = startEddy(["serve", "--port", "0", "--tables", TABLE], "serving", o.natsUrl, log);
  try {
    await eddy.ready;
    const http = await service.ready;
    log(`serving: eddy serve listening at ${http}`);
    await waitForRows(http, KEYS, 60_000);

    // Open-loop ingest: event i due at t0 + i / rate; one probe in PROBE_EVERY.
    const publisher = createPublisher(nc);
    const probesAt: number[] = []; // probe n (1-based) published at probesAt[n]
    let measureFrom = Number.POSITIVE_INFINITY;
    const seen = new Map<number, number>(); // probe n -> ms from publish to visible
    const follow = followProbe(http, (count, now) => {
      for (let n = seen.size + 1; n <= count; n++) if (probesAt[n] !== undefined) seen.set(n, now - probesAt[n]!);
    });
    await follow.ready;
    let sent = 0;
    let stopIngest = false;
    const t0 = performance.now();
    const ingest = (async () => {
      while (!stopIngest) {
        const due = Math.floor(((performance.now() - t0) / 1000) * o.ingestRate);
        for (; sent < due; sent++) {
          if (sent % PROBE_EVERY === PROBE_EVERY - 1) {
            const n = probesAt.length === 0 ? 1 : probesAt.length;
            probesAt[n] = performance.now();
            publisher.publish(SUBJECT, probeBytes(n));
          } else publisher.publish(SUBJECT, eventBytes(KEYS + sent, KEYS));
        }
        await publisher.whenPendingBelow(20_000);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    measureFrom = probesAt.length; // probes after the warm-up count
    const sentAtStart = sent;
    const measuredT0 = performance.now();
    const client = o.wanted.has("query-latency") ? queryClient(http, o.queryRate, o.seconds, log) : undefined;
    const bar = progress({
      label: "serving",
      total: o.seconds,
      unit: "s",
      terminal: Boolean(process.stderr.isTTY),
      write: (t) => process.stderr.write(t),
    });
    for (let s = 1; s <= o.seconds; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      bar.update(s);
    }
    bar.done();
    const measuredSecs = (performance.now() - measuredT0) / 1000;
    const ingested = sent - sentAtStart;
    const measureUntil = probesAt.length; // probes of the measured phase (the floor's phase follows)
    const queries = client ? await client : undefined;
    const floor = queries ? await floorOf(http, o.queryRate, log) : undefined;
    stopIngest = true;
    await ingest;
    await publisher.close();
    const lastProbe = probesAt.length - 1;
    const deadline = performance.now() + 10_000;
    while (seen.size < lastProbe && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    follow.stop();

    const cases: Record<string, CaseResult> = {};
    const ingestNote = `${Math.round(ingested / measuredSecs).toLocaleString("en")} events/s ingested while measured`;
    if (o.wanted.has("freshness")) {
      const samples = [...seen.entries()].filter(([n]) => n >= measureFrom && n < measureUntil).map(([, ms]) => ms);
      const missing = lastProbe - seen.size;
      const { p50, p99, max } = percentiles(samples);
      cases.freshness = {
        p50Ms: round(p50, 1),
        p99Ms: round(p99, 1),
        maxMs: round(max, 1),
        samples: samples.length,
        ...(missing > 0 ? { probesNeverSeen: missing } : {}),
        eventsPerSec: round(ingested / measuredSecs),
        seconds: round(measuredSecs, 1),
        target: `p99 < 250 ms: ${p99 < 250 ? "met" : "MISSED"}`,
        note:
          `eddy run, default settings (checkpoint 1 s, table flush 100 ms), ${
            KEYS.toLocaleString("en")
          } keys; publish (before ack) to the probe row's count reaching its value in an SSE client of eddy serve; ${ingestNote}` +
          (client ? `; with the query-latency load at the same time` : ""),
      };
      log(`freshness: p50 ${round(p50, 1)} ms, p99 ${round(p99, 1)} ms, max ${round(max, 1)} ms (${samples.length} probes)`);
    }
    if (queries) {
      const { p50, p99, max } = percentiles(queries.latenciesMs);
      cases["query-latency"] = {
        p50Ms: round(p50, 3),
        p99Ms: round(p99, 3),
        maxMs: round(max, 3),
        requests: queries.sent,
        errors: queries.errors,
        ...(queries.errors > 0 ? { errorKinds: { ...queries.statuses, unanswered: queries.unanswered } } : {}),
        client: queries.client,
        ...(floor ? { floor } : {}),
        requestsPerSec: o.queryRate,
        seconds: o.seconds,
        target: `p99 < 5 ms: ${p99 < 5 ? "met" : "MISSED"}`,
        note:
          `GET /tables/${TABLE}/rows/<key> from a second process (keep-alive sockets), open loop: latency from the scheduled send time (client: how late the client itself sent, its event loop delay and GC); eddy serve beside eddy run, which ingests; ${ingestNote}`,
      };
      log(`query-latency: p50 ${round(p50, 3)} ms, p99 ${round(p99, 3)} ms (${queries.sent} requests, ${queries.errors} errors)`);
      log(`query-latency: the client itself: ${JSON.stringify(queries.client)}`);
      if (floor) log(`query-latency: the floor (a bare server, the same client and ingest): ${JSON.stringify(floor)}`);
    }
    for (const [name, child] of [["run", eddy], ["serve", service]] as const) {
      const code = await child.stop();
      if (code !== 0) throw new Error(`eddy ${name} exited with ${code} on SIGTERM (expected 0)`);
    }
    return cases;
  } finally {
    await Promise.all([eddy.stop(), service.stop()]);
  }
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

/** An `eddy` command as a child process (`startChild`). */
function startEddy(args: string[], readyEvent: string, natsUrl: string, log: (line: string) => void) {
  const argv = [join(root, "bin", "eddy.js"), ...args, "--nats", natsUrl, "--log-format", "json"];
  return startChild(`eddy ${args[0]}`, argv, readyEvent, log);
}

/**
 * A node child process that logs JSON lines on stderr; `ready` resolves when it logs
 * `readyEvent`, with the URL that line names (`http` or `url`), if any.
 */
function startChild(
  name: string,
  argv: string[],
  readyEvent: string,
  log: (line: string) => void,
  env?: Record<string, string>,
) {
  log(`serving: node ${argv.join(" ").replace(root + "/", "")}`);
  const child = spawn(process.execPath, argv, {
    cwd: root,
    stdio: ["ignore", "inherit", "pipe"],
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  const exited = new Promise<number>((done) => child.on("exit", (code, signal) => done(code ?? (signal ? 128 : -1))));
  let buffered = "";
  const http = new Promise<string>((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const record = JSON.parse(line) as { event?: string; http?: string; url?: string };
          if (record.event === readyEvent) resolve(record.http ?? record.url ?? "");
          else if (record.event !== "reading") log(`serving: ${name}: ${line}`);
        } catch {
          log(`serving: ${name}: ${line}`);
        }
      }
    });
    void exited.then((code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
  });
  let stopping: Promise<number> | undefined;
  return {
    ready: http,
    stop: () => (stopping ??= (child.exitCode === null && child.kill("SIGTERM"), exited)),
  };
}

async function waitForRows(http: string, rows: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer = await fetch(`${http}/tables/${TABLE}`).then((r) => (r.ok ? r.json() : undefined)).catch(() => undefined) as
      | { rows?: number }
      | undefined;
    if ((answer?.rows ?? 0) >= rows) return;
    if (performance.now() > deadline) throw new Error(`serving: table ${TABLE} did not reach ${rows} rows in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Follow the probe row's count through the API's Server-Sent Events. */
function followProbe(http: string, onCount: (count: number, now: number) => void) {
  const abort = new AbortController();
  let ready!: () => void;
  const readyPromise = new Promise<void>((r) => (ready = r));
  void (async () => {
    const response = await fetch(`${http}/tables/${TABLE}/changes?key=${PROBE_KEY}`, { signal: abort.signal });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const now = performance.now();
      buffered += value;
      let end: number;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const message = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const event = /^event: (.*)$/m.exec(message)?.[1];
        const data = /^data: (.*)$/m.exec(message)?.[1];
        if (event === "ready") ready();
        if (event === "change" && data) {
          const row = (JSON.parse(data) as { row?: { count?: number } }).row;
          if (row?.count !== undefined) onCount(row.count, now);
        }
      }
    }
  })().catch(() => ready());
  return { ready: readyPromise, stop: () => abort.abort() };
}

/**
 * The floor: the same client at the same rate, for `floorSeconds`, against a bare node:http server
 * (scripts/bench-bare-server.ts) answering every request with a real row answer's bytes, while
 * the pipeline still ingests and `eddy serve` still follows the table.
 */
async function floorOf(http: string, rate: number, log: (line: string) => void) {
  const body = await fetch(`${http}/tables/${TABLE}/rows/k-1`).then((r) => r.text());
  const argv = ["--import", "tsx", join(root, "scripts", "bench-bare-server.ts")];
  const bare = startChild("bare server", argv, "serving", log, { BARE_BODY: body });
  try {
    const queries = await queryClient(await bare.ready, rate, floorSeconds, log);
    const { p50, p99, max } = percentiles(queries.latenciesMs);
    return { p50Ms: round(p50, 3), p99Ms: round(p99, 3), maxMs: round(max, 3), errors: queries.errors, seconds: floorSeconds };
  } finally {
    await bare.stop();
  }
}

/** How the load client measured itself (scripts/bench-query-client.ts): its own delays count as latency. */
interface ClientSelf {
  readonly sendLagP99Ms: number;
  readonly sendLagMaxMs: number;
  readonly fromSendP50Ms: number;
  readonly fromSendP99Ms: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly gcMs: number;
  readonly gcMaxMs: number;
}

/** scripts/bench-query-client.ts in its own process. */
function queryClient(http: string, rate: number, seconds: number, log: (line: string) => void) {
  const argv = ["--import", "tsx", join(root, "scripts", "bench-query-client.ts")];
  argv.push("--url", http, "--table", TABLE, "--keys", String(KEYS), "--rate", String(rate), "--seconds", String(seconds));
  log(`query-latency: node ${argv.join(" ").replace(root + "/", "")}`);
  return new Promise<
    { latenciesMs: number[]; errors: number; unanswered: number; statuses: object; sent: number; client: ClientSelf }
  >(
    (resolve, reject) => {
      const child = spawn(process.execPath, argv, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.on("exit", (code) => {
        const line = out.split("\n").find((l) => l.startsWith("RESULT "));
        if (code !== 0 || !line) reject(new Error(`bench-query-client exited with ${code}: ${out.slice(-500)}`));
        else resolve(JSON.parse(line.slice("RESULT ".length)));
      });
    },
  );
}
