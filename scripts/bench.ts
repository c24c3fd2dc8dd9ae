/**
 * Eddy's benchmark: throughput of a keyed aggregate against the two things it must beat, plus the
 * memory and restart cost of a large keyed state. Starts its own nats-server (temporary store,
 * free port), publishes the events itself, and measures side by side in one run:
 *
 *   ceiling          a bare ordered consumer reading and JSON.parse-ing every event
 *   peer             what one writes by hand: durable pull consumer, per event kv.get, kv.put, ack,
 *                    one at a time (over a bounded prefix: it is slow)
 *   core-aggregate   an Eddy pipeline (count + sum per key into a result table), Worker.start to
 *                    committedPosition == last seq; rows verified exactly
 *   core-aggregate-100-keys  the same over a stream with 100 keys, where table upserts coalesce
 *   state-1m-keys    peak RSS of a worker holding 1,000,000 keys of aggregate state (child process)
 *   nexmark-q0 ... nexmark-q8  the Nexmark queries over generated events, beside the read ceiling of
 *                    what they read and Flink's per-core figures (scripts/bench-nexmark.ts; `--cases nexmark`
 *                    runs them all, `--cases nexmark-q8` one, and only with `--cases`; q3 and q8 read the
 *                    persons and auctions of `--nexmark-join-events` generated events)
 *   restart-1m-keys  a new worker on that state: the time until it processes again, i.e. the next
 *                    events are folded into the recovered state (committedMs, the first commit
 *                    after, which rewrites the whole state, is reported beside it) (child process)
 *   query-latency, freshness   the query API of `eddy run` under load (scripts/bench-serving.ts)
 *   publisher-internal-vs-public  the Publisher over nc.publish beside the protocol-frame writer it
 *                    replaced (scripts/bench-publisher.ts): acked messages/s and the ratio, 3 rounds
 *
 * Writes bench/results.json (merging into its `cases`: only the ids measured now are replaced)
 * and bench/RESULTS.md.
 *
 *   npx tsx scripts/bench.ts [--events 1000000] [--keys 100000] [--state-keys 1000000]
 *     [--peer-events 10000] [--peer-seconds 20] [--serving-seconds 20] [--query-rate 500] [--ingest-rate 10000]
 *     [--nexmark-events 300000] [--nexmark-join-events 2500000] [--scale-events 1000000]
 *     [--cases ceiling,peer,core-aggregate,core-aggregate-100-keys,state,restart,query-latency,freshness,nexmark,publisher-internal-vs-public,rebalance-pause,failover,scale-cpu,scale-2-workers,scale-repartitioned]
 *     [--cpu-prof]   (workers write .cpuprofile files to bench/profiles/)  [--verbose]  (print each worker RESULT)
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../src/platform/nats-server.ts";
import { readRow, readTable } from "../src/state/table.ts";
import { progress } from "../src/cli/progress.ts";
import { servingCases } from "./bench-serving.ts";
import { benchNexmark, nexmarkReport, nexmarkWanted } from "./bench-nexmark.ts";
import { benchPublisherWires } from "./bench-publisher.ts";
import { benchScale } from "./bench-scale.ts";
import { cpuSeconds, ensureStream, expectedRow, keyOf, publishEvents, readCeiling, round, vmHwmMb } from "./bench-common.ts";
import { tableBucket } from "../src/core/names.ts";

// ---------------------------------------------------------------------------------------------
// Options

const flags = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]!;
  if (!a.startsWith("--")) continue;
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith("--")) flags.set(a.slice(2), "true");
  else flags.set(a.slice(2), next), i++;
}
const num = (name: string, dflt: number) => {
  const v = Number(flags.get(name) ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return Math.floor(v);
};
const EVENTS = num("events", 1_000_000);
const KEYS = num("keys", 100_000);
const STATE_KEYS = num("state-keys", 1_000_000);
const PEER_EVENTS = num("peer-events", 10_000);
const PEER_SECONDS = num("peer-seconds", 20);
const SERVING_SECONDS = num("serving-seconds", 20);
const QUERY_RATE = num("query-rate", 500);
const INGEST_RATE = num("ingest-rate", 10_000);
const NEXMARK_EVENTS = num("nexmark-events", 300_000);
const NEXMARK_JOIN_EVENTS = num("nexmark-join-events", 2_500_000);
const SCALE_EVENTS = num("scale-events", 1_000_000);
const RESTART_EVENTS = 10;
const CPU_PROF = flags.has("cpu-prof");
const wanted = new Set((
  flags.get("cases") ??
    "ceiling,peer,core-aggregate,core-aggregate-100-keys,state,restart,query-latency,freshness,nexmark,publisher-internal-vs-public,rebalance-pause,failover,scale-cpu,scale-2-workers"
).split(","));
if (wanted.has("restart")) wanted.add("state"); // the restart runs on the state case's checkpoints

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, "bench");
const label = (n: number) => (n % 1_000_000 === 0 ? `${n / 1_000_000}m` : n % 1000 === 0 ? `${n / 1000}k` : String(n));
const STATE_ID = `state-${label(STATE_KEYS)}-keys`;
const RESTART_ID = `restart-${label(STATE_KEYS)}-keys`;

const SOURCE_STREAM = "bench-events";
const SOURCE_SUBJECT = "bench.events";
const FEW_STREAM = "bench-events-few";
const FEW_SUBJECT = "bench.few";
const STATE_STREAM = "bench-state";
const STATE_SUBJECT = "bench.state";

const began = performance.now();
const LOAD_AT_START = loadavg().map((l) => round(l, 2));
const log = (line: string) => console.log(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}`);
const fmt = (n: number) => Math.round(n).toLocaleString("en");

type CaseResult = {
  eventsPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  seconds?: number;
  peakRssMb?: number;
  [note: string]: unknown;
};
const cases: Record<string, CaseResult> = {};

// The worker runs bundled in child processes (see bundleWorker): built once, at the start.
const WORKER_BUNDLE = await bundleWorker();

// ---------------------------------------------------------------------------------------------
// Server and source stream

const SERVER_LOG = join(tmpdir(), `eddy-bench-nats-${process.pid}.log`);
const server = await startNatsServer({ logFile: SERVER_LOG });
const nc = await connect({ servers: server.url, noAsyncTraces: true });
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
const decoder = new TextDecoder();
const encoder = new TextEncoder();
log(`nats-server ${server.url} (pid ${server.pid}, store ${server.storeDir}); ${cpus().length} cores`);

let failed = false;
try {
  if (wanted.has("ceiling") || wanted.has("peer") || wanted.has("core-aggregate")) {
    await ensureStream(nc, SOURCE_STREAM, SOURCE_SUBJECT);
    const bar = progress({
      label: "  publishing",
      total: EVENTS,
      unit: "events",
      terminal: Boolean(process.stdout.isTTY),
      write: (t) => process.stdout.write(t),
    });
    const rate = await publishEvents(nc, SOURCE_SUBJECT, 0, EVENTS, KEYS, (n) => bar.update(n));
    bar.done();
    const info = await jsm.streams.info(SOURCE_STREAM);
    log(
      `published ${fmt(EVENTS)} events (${fmt(KEYS)} keys, ${
        Math.round(info.state.bytes / info.state.messages)
      } bytes/msg stored) at ${fmt(rate)}/s`,
    );
    cases.publish = { eventsPerSec: round(rate), events: EVENTS, note: "createPublisher, 20k in flight, one event per message" };
  }
  const lastSeq = async (stream: string) => (await jsm.streams.info(stream)).state.last_seq;

  // (a) ceiling ---------------------------------------------------------------------------------
  if (wanted.has("ceiling")) {
    cases.ceiling = await readCeiling(nc, {
      stream: SOURCE_STREAM,
      last: await lastSeq(SOURCE_STREAM),
      serverPid: server.pid,
      log,
    });
  }

  // (b) peer -----------------------------------------------------------------------------------
  if (wanted.has("peer")) {
    const kv = await new Kvm(nc).create("bench-peer", { history: 1 });
    await jsm.consumers.add(SOURCE_STREAM, {
      durable_name: "bench-peer",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    const consumer = await js.consumers.get(SOURCE_STREAM, "bench-peer");
    const messages = await consumer.consume();
    const latencies: number[] = [];
    const t0 = performance.now();
    const deadline = t0 + PEER_SECONDS * 1000;
    for await (const m of messages) {
      const s = performance.now();
      const ev = JSON.parse(decoder.decode(m.data)) as { key: string; v: number };
      const entry = await kv.get(ev.key);
      const before = entry && entry.operation === "PUT"
        ? (JSON.parse(decoder.decode(entry.value)) as { count: number; sum: number })
        : { count: 0, sum: 0 };
      await kv.put(ev.key, encoder.encode(JSON.stringify({ count: before.count + 1, sum: before.sum + ev.v })));
      m.ack();
      const e = performance.now();
      latencies.push(e - s);
      if (latencies.length >= PEER_EVENTS || e > deadline) break;
    }
    const secs = (performance.now() - t0) / 1000;
    await messages.close();
    latencies.sort((a, b) => a - b);
    const n = latencies.length;
    cases.peer = {
      eventsPerSec: round(n / secs),
      seconds: round(secs, 2),
      events: n,
      p50Ms: round(latencies[Math.floor(n * 0.5)]!, 3),
      p99Ms: round(latencies[Math.floor(n * 0.99)]!, 3),
      note: `durable pull consumer, per event awaited kv.get + kv.put, then ack; first ${fmt(n)} events (cap ${
        fmt(PEER_EVENTS)
      } / ${PEER_SECONDS} s)`,
    };
    log(
      `peer: ${fmt(cases.peer.eventsPerSec!)} events/s (${n} in ${
        secs.toFixed(2)
      } s; per event p50 ${cases.peer.p50Ms} ms, p99 ${cases.peer.p99Ms} ms)`,
    );
  }

  // (c) core-aggregate ----------------------------------------------------------------------------
  if (wanted.has("core-aggregate")) {
    cases["core-aggregate"] = await coreCase(
      "core-aggregate",
      "bench-core",
      SOURCE_STREAM,
      SOURCE_SUBJECT,
      EVENTS,
      KEYS,
      "bench_core_totals",
    );
  }
  // The same pipeline where table upserts coalesce (few keys): the engine's path without the
  // one-KV-write-per-event of a high-cardinality result table. Its own stream, same event count.
  if (wanted.has("core-aggregate-100-keys")) {
    await ensureStream(nc, FEW_STREAM, FEW_SUBJECT);
    const rate = await publishEvents(nc, FEW_SUBJECT, 0, EVENTS, 100);
    log(`published ${fmt(EVENTS)} events with 100 keys at ${fmt(rate)}/s`);
    cases["core-aggregate-100-keys"] = await coreCase(
      "core-aggregate-100-keys",
      "bench-core-few",
      FEW_STREAM,
      FEW_SUBJECT,
      EVENTS,
      100,
      "bench_core_few_totals",
    );
  }

  // state-1m-keys and restart-1m-keys ------------------------------------------------------------
  if (wanted.has("state")) {
    await ensureStream(nc, STATE_STREAM, STATE_SUBJECT);
    const rate = await publishEvents(
      nc,
      STATE_SUBJECT,
      0,
      STATE_KEYS,
      STATE_KEYS,
      (n) => log(`  published ${fmt(n)} (state stream)`),
    );
    log(`published ${fmt(STATE_KEYS)} events with ${fmt(STATE_KEYS)} distinct keys at ${fmt(rate)}/s`);
    const table = "bench_state_totals";
    const r = await runWorker("state", { pipeline: "bench-state", stream: STATE_STREAM, subject: STATE_SUBJECT, table });
    const nudged = r.nudges > 0 ? 1 : 0;
    if (r.keys !== STATE_KEYS + nudged) throw new Error(`${STATE_ID}: the worker held ${r.keys} keys, expected ${STATE_KEYS}`);
    await verifyRows(table, STATE_KEYS, STATE_KEYS, spreadKeys(STATE_KEYS, 10), STATE_KEYS + nudged);
    cases[STATE_ID] = {
      peakRssMb: r.peakRssMb,
      vmHwmMb: r.vmHwmMb,
      rssBeforeStartMb: r.rssBeforeStartMb,
      rssAtStartMb: r.rssAtStartMb,
      stateRssMb: round(r.peakRssMb - r.rssAtStartMb, 1),
      memoryAtPeak: r.memoryAtPeak,
      maxEventLoopBlockMs: r.maxPollGapMs,
      rssAfterStopMb: r.rssMbAtEnd,
      heapUsedMbAtEnd: r.heapUsedMbAtEnd,
      keys: r.keys,
      eventsPerSec: round(STATE_KEYS / (r.committedMs / 1000)),
      seconds: round(r.committedMs / 1000, 2),
      ...stallNote(r),
      note:
        `child process running the worker bundled (esbuild, plain node, no tsx); ${
          fmt(STATE_KEYS)
        } events, every key distinct; ` +
        "peak of process.memoryUsage.rss() sampled every 20 ms; rssBeforeStartMb = after connect, before Worker.start; rssAtStartMb = Worker.start resolved, no state yet; stateRssMb = peak - rssAtStartMb",
    };
    log(
      `${STATE_ID}: peak RSS ${r.peakRssMb} MB (VmHWM ${r.vmHwmMb} MB), ${fmt(r.keys)} keys, ${
        fmt(STATE_KEYS / (r.committedMs / 1000))
      } events/s`,
    );

    if (wanted.has("restart")) {
      // A few more events on existing keys, published while no worker runs.
      await publishEvents(nc, STATE_SUBJECT, STATE_KEYS, STATE_KEYS + RESTART_EVENTS, STATE_KEYS);
      const rr = await runWorker("restart", {
        pipeline: "bench-state",
        stream: STATE_STREAM,
        subject: STATE_SUBJECT,
        table,
        mode: "restart",
      });
      const rows = STATE_KEYS + (nudged || rr.nudges > 0 ? 1 : 0);
      await verifyRows(
        table,
        STATE_KEYS + RESTART_EVENTS,
        STATE_KEYS,
        keysOfEvents(STATE_KEYS, STATE_KEYS + RESTART_EVENTS, STATE_KEYS),
        rows,
      );
      cases[RESTART_ID] = {
        seconds: round(rr.processedMs / 1000, 2),
        startMs: rr.startedMs,
        processedMs: rr.processedMs,
        committedMs: rr.committedMs,
        processBootMs: rr.bootMs,
        peakRssMb: rr.peakRssMb,
        rssBeforeStartMb: rr.rssBeforeStartMb,
        rssAtStartMb: rr.rssAtStartMb,
        keys: rr.keys,
        ...stallNote(rr),
        note:
          `child process running the worker bundled (esbuild, plain node, no tsx); rssBeforeStartMb = before Worker.start, rssAtStartMb = state recovered; from calling Worker.start on ${
            fmt(STATE_KEYS)
          } keys of checkpointed state: start resolved (all actors recovered, running), ` +
          `the ${RESTART_EVENTS} events published meanwhile processed (seconds = processing again), then committed; process boot not included`,
      };
      log(
        `${RESTART_ID}: Worker.start ${(rr.startedMs / 1000).toFixed(2)} s, next events processed ${
          (rr.processedMs / 1000).toFixed(2)
        } s, ` +
          `committed ${(rr.committedMs / 1000).toFixed(2)} s (peak RSS ${rr.peakRssMb} MB)`,
      );
    }
  }
  if (wanted.has("query-latency") || wanted.has("freshness")) {
    Object.assign(
      cases,
      await servingCases({
        nc,
        natsUrl: server.url,
        wanted,
        seconds: SERVING_SECONDS,
        queryRate: QUERY_RATE,
        ingestRate: INGEST_RATE,
        log,
      }),
    );
  }
  if (wanted.has("publisher-internal-vs-public")) {
    log("publisher-internal-vs-public: the Publisher over the protocol-frame writer and over nc.publish, interleaved");
    cases["publisher-internal-vs-public"] = await benchPublisherWires(nc, { rounds: 3, small: 100_000, large: 1_500, log });
  }
  if (["rebalance-pause", "failover", "scale-cpu", "scale-2-workers", "scale-repartitioned"].some((c) => wanted.has(c))) {
    Object.assign(
      cases,
      await benchScale({ nc, url: server.url, serverPid: server.pid, log, wanted, scaleEvents: SCALE_EVENTS }),
    );
  }
  const nexmark = nexmarkWanted(wanted);
  if (nexmark.length > 0) {
    Object.assign(
      cases,
      await benchNexmark(
        { nc, serverPid: server.pid, events: NEXMARK_EVENTS, joinEvents: NEXMARK_JOIN_EVENTS, log, runWorker },
        nexmark,
      ),
    );
  }
} catch (error) {
  failed = true;
  console.error(`\nBENCH FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await nc.close().catch(() => {});
  await server.stop();
}

// Slow-consumer warnings: the server dropped messages to a client that did not read its socket in
// time (an event loop blocked for seconds); dropped PubAcks cost the Publisher its ack timeout.
const serverLog = existsSync(SERVER_LOG) ? readFileSync(SERVER_LOG, "utf8") : "";
const slow = serverLog.split("\n").filter((l) => /slow consumer/i.test(l));
if (slow.length > 0) {
  log(`nats-server reported ${slow.length} slow-consumer warnings, e.g. ${slow[0]}`);
  for (const id of Object.keys(cases)) if (id !== "publish") cases[id]!.serverSlowConsumerWarningsInRun = slow.length;
}
rmSync(SERVER_LOG, { force: true });

if (failed) process.exit(1);
writeResults();
log("done");

// ---------------------------------------------------------------------------------------------
// Helpers

interface WorkerResult {
  lastSeq: number;
  eventsIn: number;
  keys: number;
  bootMs: number;
  startedMs: number;
  processedMs: number;
  committedMs: number;
  stopMs: number;
  nudges: number;
  maxPollGapMs: number;
  stalledMs: number;
  cpuSeconds: number;
  peakRssMb: number;
  rssBeforeStartMb: number;
  rssAtStartMb: number;
  memoryAtPeak: Record<string, number>;
  vmHwmMb: number | undefined;
  heapUsedMbAtEnd: number;
  rssMbAtEnd: number;
  log: string[];
}

/**
 * scripts/bench-worker.ts bundled to plain JavaScript (once per bench run), as production would run
 * it: no tsx loader in the measured process (its off-thread module hooks cost ~70 MB of baseline
 * RSS). node_modules packages stay external, so they load from node_modules exactly as in tests.
 */
async function bundleWorker(): Promise<string> {
  const t0 = performance.now();
  const esbuild = await import("esbuild");
  const outfile = join(benchDir, ".build", "bench-worker.mjs");
  await esbuild.build({
    entryPoints: [join(root, "scripts", "bench-worker.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    packages: "external",
    sourcemap: CPU_PROF ? "linked" : false,
    logLevel: "warning",
  });
  log(
    `bundled scripts/bench-worker.ts to ${outfile.replace(root + "/", "")} in ${
      (performance.now() - t0).toFixed(0)
    } ms (esbuild ${esbuild.version})`,
  );
  return outfile;
}

/** Run the bundled scripts/bench-worker.ts in a child process (plain node) and return its RESULT line. */
function runWorker(
  name: string,
  a: { pipeline: string; stream: string; subject: string; table: string; mode?: string; query?: string },
): Promise<WorkerResult> {
  const bundle = WORKER_BUNDLE;
  const argv: string[] = [];
  if (CPU_PROF) {
    mkdirSync(join(benchDir, "profiles"), { recursive: true });
    argv.push("--cpu-prof", "--cpu-prof-dir", join(benchDir, "profiles"));
  }
  argv.push(
    bundle,
    "--url",
    server.url,
    "--pipeline",
    a.pipeline,
    "--stream",
    a.stream,
    "--subject",
    a.subject,
    "--table",
    a.table,
  );
  if (a.mode) argv.push("--mode", a.mode);
  if (a.query) argv.push("--nexmark", a.query);
  log(`${name}: node ${argv.join(" ").replace(root + "/", "")}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let hwm: number | undefined;
    // VmHWM from outside too, in case the child dies before reporting.
    const watch = setInterval(() => (hwm = vmHwmMb(child.pid!) ?? hwm), 200);
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => process.stdout.write(d));
    child.on("exit", (code) => {
      clearInterval(watch);
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || !line) {
        reject(new Error(`bench-worker ${name} exited with ${code} (last VmHWM ${hwm} MB); stdout:\n${out.slice(-2000)}`));
        return;
      }
      const result = JSON.parse(line.slice("RESULT ".length)) as WorkerResult;
      if (flags.has("verbose")) log(`${name}: ${line}`);
      if (result.log.length > 0) log(`${name}: worker log: ${result.log.join("; ")}`);
      resolve(result);
    });
  });
}

/** Run the aggregate pipeline over a stream in a child worker, verify its table, describe the case. */
async function coreCase(
  id: string,
  pipelineId: string,
  stream: string,
  subject: string,
  events: number,
  keys: number,
  table: string,
): Promise<CaseResult> {
  const last = (await jsm.streams.info(stream)).state.last_seq;
  const scpu0 = cpuSeconds(server.pid);
  const r = await runWorker(id, { pipeline: pipelineId, stream, subject, table });
  const secs = r.committedMs / 1000;
  const serverSecs = cpuSeconds(server.pid) - scpu0;
  const distinct = Math.min(keys, events);
  const sample = spreadKeys(distinct, 25);
  await verifyRows(table, events, keys, sample, distinct + (r.nudges > 0 ? 1 : 0));
  // Every table upsert is one message in the table's KV stream: its last sequence counts them.
  const tableWrites = (await jsm.streams.info(`KV_${tableBucket(table)}`)).state.last_seq;
  const result: CaseResult = {
    eventsPerSec: round(last / secs),
    seconds: round(secs, 2),
    peakRssMb: r.peakRssMb,
    events: last,
    keys: distinct,
    partitions: 8,
    processedEventsPerSec: round(last / (r.processedMs / 1000)),
    startMs: r.startedMs,
    processedMs: r.processedMs,
    committedMs: r.committedMs,
    tableWrites,
    workerCpuPct: round((r.cpuSeconds / secs) * 100),
    serverCpuPct: round((serverSecs / secs) * 100),
    maxEventLoopBlockMs: r.maxPollGapMs,
    verified: `${sample.length} rows exact + row count`,
    ...stallNote(r),
    note:
      "child process running the worker bundled (esbuild, plain node, no tsx); Worker.start to committedPosition == last seq, default checkpoint settings (1 s / 100k events)",
  };
  log(
    `${id}: ${fmt(last / secs)} events/s committed (${secs.toFixed(2)} s; all processed at ${
      (r.processedMs / 1000).toFixed(2)
    } s; ` +
      `${
        fmt(tableWrites)
      } table writes; worker cpu ${result.workerCpuPct}%, server cpu ${result.serverCpuPct}%; peak rss ${r.peakRssMb} MB)`,
  );
  return result;
}

/** A result's stall nudges (see bench-worker.ts), as notes, only when there were any. */
function stallNote(r: WorkerResult): Record<string, unknown> {
  return r.nudges > 0
    ? {
      readerStalls: r.nudges,
      stalledMs: r.stalledMs,
      stallNote: "src/log/reader.ts held its last partial batch (getPending over-count); nudged",
    }
    : {};
}

/** `count` key indexes spread over [0, keys). */
function spreadKeys(keys: number, count: number): number[] {
  const n = Math.min(keys, count);
  return Array.from({ length: n }, (_, j) => Math.floor((j * keys) / n));
}

/** The key indexes of events [from, to). */
function keysOfEvents(from: number, to: number, keys: number): number[] {
  const out = new Set<number>();
  for (let i = from; i < to; i++) out.add(Number(keyOf(i, keys).slice(2)));
  return [...out];
}

/** Fail loudly unless the sampled rows equal count/sum over the published events, and the table has `rows` rows. */
async function verifyRows(table: string, events: number, keys: number, keyIndexes: number[], rows: number): Promise<void> {
  for (const k of keyIndexes) {
    const want = expectedRow(k, events, keys);
    const got = await readRow<{ key: string; count: number; sum: number }>(nc, table, `k-${k}`);
    if (!got || got.count !== want.count || got.sum !== want.sum || got.key !== `k-${k}`) {
      throw new Error(`${table}: row k-${k} is ${JSON.stringify(got)}, expected ${JSON.stringify({ key: `k-${k}`, ...want })}`);
    }
  }
  // Count through the public reader: the table's storage layout (a KV entry per row, or pages of
  // rows) is the runtime's business.
  const all = await readTable<{ key: string }>(nc, table);
  if (all.length !== rows) throw new Error(`${table}: ${all.length} rows, expected ${rows}`);
  log(`verified ${keyIndexes.length} rows of ${table} exactly, and ${fmt(rows)} rows in all`);
}

function writeResults(): void {
  mkdirSync(benchDir, { recursive: true });
  const file = join(benchDir, "results.json");
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { cases?: Record<string, CaseResult> }) : {};
  const results = {
    machine: { cores: cpus().length, node: process.version, cpuModel: cpus()[0]?.model ?? "unknown" },
    date: new Date().toISOString(),
    loadAverageAtStart: LOAD_AT_START,
    cases: { ...(previous.cases ?? {}), ...cases },
  };
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);

  const all = results.cases;
  const core = all["core-aggregate"]?.eventsPerSec;
  const ceiling = all.ceiling?.eventsPerSec;
  const peer = all.peer?.eventsPerSec;
  const ratios: string[] = [];
  if (core && ceiling) {
    ratios.push(`core/ceiling = ${(core / ceiling).toFixed(2)} (target ≥ 0.50: ${core / ceiling >= 0.5 ? "met" : "MISSED"})`);
  }
  const eddyReader = all.ceiling?.eddyReaderEventsPerSec as number | undefined;
  if (core && eddyReader) {
    ratios.push(`core/Eddy's reader alone = ${(core / eddyReader).toFixed(2)} (no target; the reader beats the ceiling's loop)`);
  }
  const few = all["core-aggregate-100-keys"]?.eventsPerSec;
  if (few && ceiling) {
    ratios.push(`core-aggregate-100-keys/ceiling = ${(few / ceiling).toFixed(2)} (same pipeline, table upserts coalesced)`);
  }
  if (core && peer) {
    ratios.push(`core/peer = ${(core / peer).toFixed(1)}x (target ≥ 10x: ${core / peer >= 10 ? "met" : "MISSED"})`);
  }
  const state = all["state-1m-keys"]?.peakRssMb;
  if (state) ratios.push(`state-1m-keys peak RSS ${state} MB (target < 400: ${state < 400 ? "met" : "MISSED"})`);
  const restart = all["restart-1m-keys"]?.seconds;
  if (restart) ratios.push(`restart-1m-keys ${restart} s (target < 5: ${restart < 5 ? "met" : "MISSED"})`);

  const query = all["query-latency"]?.p99Ms;
  const floor = (all["query-latency"]?.floor as { p99Ms?: number } | undefined)?.p99Ms;
  if (query !== undefined) {
    ratios.push(
      `query-latency p99 ${query} ms (target < 5: ${query < 5 ? "met" : "MISSED"})` +
        (floor === undefined ? "" : `; a bare server's p99, same client and load: ${floor} ms`),
    );
  }
  const wires = all["publisher-internal-vs-public"] as Record<string, { medianRatio?: number }> | undefined;
  if (wires) {
    ratios.push(
      `publisher internal/public (median of 3): small with msg id ${wires["small-msg-id"]?.medianRatio}, ` +
        `100 KB KV puts ${wires["kv-100kb"]?.medianRatio}, small without headers ${wires["small-no-hdr"]?.medianRatio}`,
    );
  }
  const fresh = all.freshness?.p99Ms;
  if (fresh !== undefined) ratios.push(`freshness p99 ${fresh} ms (target < 250: ${fresh < 250 ? "met" : "MISSED"})`);

  const cell = (v: unknown) => (v === undefined ? "" : typeof v === "number" ? v.toLocaleString("en") : String(v));
  const known = new Set(["eventsPerSec", "seconds", "p50Ms", "p99Ms", "peakRssMb", "note"]);
  const lines = [
    "# Eddy benchmark results",
    "",
    `Generated by \`npx tsx scripts/bench.ts\` on ${results.date}: ${results.machine.cores} cores, ${results.machine.cpuModel}, Node ${results.machine.node}; ` +
    `nats-server 2.9.10 (file storage) on the same machine; load average at start ${
      LOAD_AT_START.join(" / ")
    } (a shared machine: compare ratios, not absolutes). ` +
    "Cases measured in earlier runs keep their figures.",
    "",
    "| case | events/s | seconds | p50 ms | p99 ms | peak RSS MB | details |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...Object.entries(all).map(([id, c]) => {
      const details = Object.entries(c)
        .filter(([k]) => !known.has(k))
        .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : cell(v)}`)
        .join("; ");
      return `| ${id} | ${cell(c.eventsPerSec)} | ${cell(c.seconds)} | ${cell(c.p50Ms)} | ${cell(c.p99Ms)} | ${
        cell(c.peakRssMb)
      } | ${[details, c.note].filter(Boolean).join(". ")} |`;
    }),
    "",
    `**Ratios:** ${ratios.join("; ") || "(need core-aggregate with ceiling / peer)"}`,
    "",
    ...nexmarkReport(all),
  ];
  writeFileSync(join(benchDir, "RESULTS.md"), lines.join("\n"));
  console.log(`\n${ratios.join("\n")}\nwrote ${file} and bench/RESULTS.md`);
}
