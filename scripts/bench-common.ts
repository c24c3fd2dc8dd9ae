/**
 * Shared by scripts/bench.ts and scripts/bench-worker.ts: the benchmark's event shape, its
 * deterministic generator, the pipeline under test, and small measuring helpers.
 *
 * Event i (0-based) of a run with K distinct keys is
 *   { key: "k-<(i * 7919) mod K>", v: (i * 37 + 11) mod 1000, ts, note }   (~100 bytes of JSON)
 * 7919 is prime and coprime with any K of the form 10^n, so the first K events hit every key once,
 * in a scrambled order; sums are small integers, so expected values are exact.
 *
 * @example
 * const p = benchPipeline("bench-core", "bench-events", "bench_core_totals");
 * const worker = await Worker.start(nc, p);
 */
import { readFileSync } from "node:fs";
import { Schema } from "effect";
import { startReader } from "../src/log/reader.ts";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { createPublisher } from "../src/log/publisher.ts";
import { partitionOfKey } from "../src/core/partition.ts";
import { type Pipeline, pipeline } from "../src/pipeline/pipeline.ts";
import { readTable } from "../src/state/table.ts";

export const BenchEvent = Schema.Struct({
  key: Schema.String,
  v: Schema.Number,
  ts: Schema.Number,
});
export type BenchEvent = typeof BenchEvent.Type;

export const KEY_STRIDE = 7919;
const T0 = 1_704_067_200_000;
const NOTE = "coffee-shop-bench-padding-0123456789abcdef-";

export function keyOf(i: number, keys: number): string {
  return `k-${(i * KEY_STRIDE) % keys}`;
}

export function valueOf(i: number): number {
  return (i * 37 + 11) % 1000;
}

const encoder = new TextEncoder();

/** The bytes of event i; `i` offsets let "a few more events" continue the same sequence. */
export function eventBytes(i: number, keys: number): Uint8Array {
  return encoder.encode(`{"key":"${keyOf(i, keys)}","v":${valueOf(i)},"ts":${T0 + i * 10},"note":"${NOTE}${i % 1000}"}`);
}

/**
 * The pipeline under test: count and sum of v per key, into one result table. With
 * `partitionSubject` (e.g. "bench.{partition}"), its source is partitioned by subject
 * (publish with `partitionedSubject`).
 */
export function benchPipeline(
  id: string,
  stream: string,
  table: string,
  partitions?: number,
  partitionSubject?: string,
): Pipeline {
  const p = pipeline(id, partitions === undefined ? {} : { partitions });
  p.source("events", { stream, schema: BenchEvent, ...(partitionSubject ? { partitionSubject } : {}) })
    .keyBy("by-key", "key")
    .aggregate("totals", (a) => ({ count: a.count(), sum: a.sum("v") }))
    .toTable(table);
  return p;
}

/** The subject of event i for a source partitioned by subject: `template` with its partition for {partition}. */
export function partitionedSubject(template: string, keys: number, partitions: number): (i: number) => string {
  const subjects = Array.from({ length: partitions }, (_, q) => template.replace("{partition}", String(q)));
  return (i) => subjects[partitionOfKey(keyOf(i, keys), partitions)]!;
}

/** Create a file stream capturing `<subject>` if it is missing. */
export async function ensureStream(nc: NatsConnection, stream: string, subject: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info) await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
}

/**
 * Publish events [from, to) with `keys` distinct keys through the ack-counting Publisher; resolves
 * once all are acknowledged. Returns events per second.
 */
export async function publishEvents(
  nc: NatsConnection,
  subject: string | ((i: number) => string),
  from: number,
  to: number,
  keys: number,
  onProgress?: (done: number) => void,
): Promise<number> {
  const publisher = createPublisher(nc);
  const started = performance.now();
  try {
    for (let i = from; i < to; i++) {
      publisher.publish(typeof subject === "string" ? subject : subject(i), eventBytes(i, keys));
      if ((i - from) % 1000 === 999) {
        await publisher.whenPendingBelow(20_000);
        if (onProgress && (i - from) % 10_000 === 9_999) onProgress(i - from + 1);
      }
    }
  } finally {
    await publisher.close();
  }
  return (to - from) / ((performance.now() - started) / 1000);
}

/**
 * The read ceiling: a bare ordered consumer reading and JSON.parse-ing every message of `stream`
 * (only `subject`, when given) up to sequence `last`, no work per event. Run twice, with the
 * default consume() options and with max_messages 8000; the better run is the ceiling.
 */
export async function readCeiling(
  nc: NatsConnection,
  o: { stream: string; last: number; subject?: string; serverPid: number; log: (line: string) => void },
): Promise<{ eventsPerSec: number; [detail: string]: unknown }> {
  const js = jetstream(nc);
  const decoder = new TextDecoder();
  const runs: number[] = [];
  let best: { eventsPerSec: number; [detail: string]: unknown } | undefined;
  for (const max of [undefined, 8000]) {
    const cpu0 = cpuSeconds();
    const scpu0 = cpuSeconds(o.serverPid);
    const t0 = performance.now();
    const consumer = await js.consumers.get(o.stream, o.subject ? { filter_subjects: o.subject } : {});
    const messages = await consumer.consume(max === undefined ? {} : { max_messages: max });
    let n = 0;
    let fields = 0;
    for await (const m of messages) {
      fields += Object.keys(JSON.parse(decoder.decode(m.data))).length;
      n++;
      if (m.seq >= o.last) break;
    }
    const secs = (performance.now() - t0) / 1000;
    await messages.close();
    const result = {
      eventsPerSec: round(n / secs),
      seconds: round(secs, 2),
      events: n,
      consume: max === undefined ? "default options" : `max_messages ${max}`,
      clientCpuPct: round(((cpuSeconds() - cpu0) / secs) * 100),
      serverCpuPct: round(((cpuSeconds(o.serverPid) - scpu0) / secs) * 100),
    };
    runs.push(result.eventsPerSec);
    o.log(
      `ceiling of ${o.subject ?? o.stream} (${result.consume}): ${
        Math.round(result.eventsPerSec).toLocaleString("en")
      } events/s (${n} in ${secs.toFixed(2)} s, ${fields} fields)`,
    );
    if (!best || result.eventsPerSec > best.eventsPerSec) best = result;
  }
  const fmt = (v: number) => Math.round(v).toLocaleString("en");
  // Eddy's own reader (src/log/reader.ts) reads faster than the client's consume() loop: measured
  // alongside, so that ratios to the ceiling can be read against what Eddy's reading alone reaches.
  const t0 = performance.now();
  let n = 0;
  let parsedFields = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const reader = await startReader(nc, {
    stream: o.stream,
    subject: o.subject,
    fromSeq: 1,
    onBatch: (messages) => {
      for (const m of messages) {
        parsedFields += Object.keys(JSON.parse(decoder.decode(m.data))).length;
        n++;
        if (m.seq >= o.last) done();
      }
    },
  });
  await finished;
  const eddyReaderEventsPerSec = round(n / ((performance.now() - t0) / 1000));
  await reader.stop();
  o.log(`Eddy's reader alone on ${o.subject ?? o.stream}: ${fmt(eddyReaderEventsPerSec)} events/s (${parsedFields} fields)`);
  return {
    ...best!,
    eddyReaderEventsPerSec,
    note: `best of ${runs.map(fmt).join(" / ")} events/s (default consume() vs max_messages 8000); ` +
      "eddyReaderEventsPerSec: Eddy's own reader (src/log/reader.ts) with the same JSON.parse, not counted as the ceiling",
  };
}

/** The key of stall nudges (see bench-worker.ts): never one of the verified `k-<n>` keys. */
export const NUDGE_KEY = "nudge";

export function nudgeBytes(n: number): Uint8Array {
  return encoder.encode(`{"key":"${NUDGE_KEY}","v":0,"ts":${T0},"note":"nudge-${n}"}`);
}

/**
 * Whether every row of the bench pipeline's table `table` holds the count and sum of the first
 * `n` events over `keys` keys (and there are `keys` rows).
 */
export async function totalsExact(nc: NatsConnection, table: string, n: number, keys: number): Promise<boolean> {
  const rows = await readTable<{ key: string; count: number; sum: number }>(nc, table);
  if (rows.length !== keys) return false;
  return rows.every((row) => {
    const want = expectedRow(Number(row.key.slice(2)), n, keys);
    return row.count === want.count && row.sum === want.sum;
  });
}

/** Expected { count, sum } for `key` over events [0, n) with `keys` distinct keys. */
export function expectedRow(keyIndex: number, n: number, keys: number): { count: number; sum: number } {
  let count = 0;
  let sum = 0;
  // Event i has key index (i * 7919) mod keys: walk i over the residue class instead of all n.
  const inv = modInverse(KEY_STRIDE % keys, keys);
  const first = (keyIndex * inv) % keys;
  for (let i = first; i < n; i += keys) {
    count++;
    sum += valueOf(i);
  }
  return { count, sum };
}

function modInverse(a: number, m: number): number {
  let [oldR, r] = [a, m];
  let [oldS, s] = [1, 0];
  while (r !== 0) {
    const q = Math.floor(oldR / r);
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1) throw new Error(`${a} has no inverse mod ${m}`);
  return ((oldS % m) + m) % m;
}

/** Peak RSS (sampled) of this process with the memory breakdown at that moment, plus VmHWM at the end. */
export function rssSampler(
  everyMs = 25,
): { stop(): { peakRssMb: number; vmHwmMb: number | undefined; atPeak: Record<string, number> } } {
  let peak = process.memoryUsage();
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) peak = m;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const m = process.memoryUsage();
      if (m.rss > peak.rss) peak = m;
      const atPeak = Object.fromEntries(Object.entries(peak).map(([k, v]) => [`${k}Mb`, mb(v)]));
      return { peakRssMb: mb(peak.rss), vmHwmMb: vmHwmMb(), atPeak };
    },
  };
}

export function vmHwmMb(pid: number | "self" = "self"): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number | "self" = "self"): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15)
  } catch {
    return Number.NaN;
  }
}

export function mb(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}

export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `condition` every `everyMs` until true or `timeoutMs` passes (then throw `what`). */
export async function until(condition: () => boolean, what: string, timeoutMs: number, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
