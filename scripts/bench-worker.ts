/**
 * One Eddy Worker in its own process, for scripts/bench.ts: so that peak RSS and CPU are the
 * worker's alone. Runs the bench pipeline (count + sum per key into a table) over a stream until
 * the committed position reaches the stream's last sequence, samples RSS on a timer, stops the
 * worker (final checkpoint) and prints one line `RESULT <json>` on stdout. scripts/bench.ts bundles
 * it with esbuild (packages external) and runs the bundle with plain node, as production would;
 * `node --import tsx scripts/bench-worker.ts ...` also works, with ~70 MB more baseline RSS.
 *
 *   node bench/.build/bench-worker.mjs --url nats://127.0.0.1:4222 --pipeline bench-core \
 *     --stream bench-events \
 *     --subject bench.events --table bench_core_totals [--mode run|restart]
 *
 * `--nexmark <query>` runs that Nexmark query (examples/nexmark/queries.ts) over the bids of
 * `--stream` instead, to the last bid (`--table` is then not needed).
 *
 * `--mode restart` reports the same, named for a restart: Worker.start resolved (every actor
 * recovered and running), first processed, first committed, all relative to calling Worker.start.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Worker } from "../src/runtime/worker.ts";
import { compile } from "../src/runtime/plan.ts";
import { applyV8Defaults } from "../src/platform/v8-defaults.ts";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { lastSequence } from "../src/log/streams.ts";
import { queries, type QueryName } from "../examples/nexmark/queries.ts";
import { benchPipeline, cpuSeconds, mb, nudgeBytes, round, rssSampler, until } from "./bench-common.ts";

applyV8Defaults(); // as the eddy command does
const bootMs = performance.now(); // time since this process started, roughly
const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const need = (name: string): string => {
  const v = args.get(name);
  if (!v) throw new Error(`bench-worker: --${name} is required`);
  return v;
};
const url = need("url");
const pipelineId = need("pipeline");
const stream = need("stream");
const subject = need("subject");
const query = args.get("nexmark") as QueryName | undefined;
if (query !== undefined && !(query in queries)) throw new Error(`bench-worker: no Nexmark query "${query}"`);
const pipelineUnderTest = query ? queries[query]({ stream }) : benchPipeline(pipelineId, stream, need("table"));
/** The source whose position is watched. */
const source = query ? "bids" : "events";
const mode = args.get("mode") ?? "run";
const timeoutMs = Number(args.get("timeout-ms") ?? 240_000);
const progress = (line: string) => process.stderr.write(`    [worker ${pipelineId}] ${line}\n`);

const sampler = rssSampler(20);
// Experiments only (bench.ts passes neither): --trace-memory <ms> prints process.memoryUsage()
// on stderr every <ms>; --heap-sample <file> runs V8's sampling heap profiler from the start and,
// once every event is processed (before the final checkpoint), writes the live allocations by
// allocation site (a .heapprofile, plus a summary of the biggest sites on stderr).
const memTrace = args.has("trace-memory")
  ? setInterval(() => {
    const m = process.memoryUsage();
    progress(
      `memory rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${
        mb(m.arrayBuffers)
      }`,
    );
  }, Number(args.get("trace-memory")) || 1000)
  : undefined;
const heapSample = args.has("heap-sample") ? await startHeapSampling(args.get("heap-sample")!) : undefined;
const nc = await connect({ servers: url, noAsyncTraces: true });
const last = await lastSequence(nc, stream, query ? subject : undefined);
const logEvents: string[] = [];
// RSS before any state: the runtime, the NATS connection and the loaded modules.
const rssBeforeStartMb = round(process.memoryUsage.rss() / 1048576, 1);
const readsMore = query !== undefined && pipelineUnderTest.steps.some((s) => s.kind === "source" && s.id !== "bids");
// A query that reads more than the bids: the ends of its sources, asked once before the clock
// starts (every event is published before), not at each poll, where the API requests would load
// the measured process and the server. An edge's end moves while the worker runs: asked only
// once every source is processed.
const sourceEnds = readsMore
  ? new Map(
    await Promise.all(
      compile(pipelineUnderTest).sources.filter((s) => !s.edge).map(async (s) =>
        [s.id, await lastSequence(nc, s.stream, s.subject)] as const
      ),
    ),
  )
  : new Map<string, number>();
const cpu0 = cpuSeconds();
const t0 = performance.now();
const worker = await Worker.start(nc, pipelineUnderTest, {
  // Experiments only (bench.ts passes neither): other checkpoint settings than the defaults.
  ...(args.has("checkpoint-ms") ? { checkpointMs: Number(args.get("checkpoint-ms")) } : {}),
  ...(args.has("checkpoint-events") ? { checkpointEvents: Number(args.get("checkpoint-events")) } : {}),
  log: (event, fields) => {
    const line = `${event} ${JSON.stringify(fields)}`;
    if (event !== "reading") logEvents.push(line);
    progress(line);
  },
});
const startedMs = performance.now() - t0;
const rssAtStartMb = round(process.memoryUsage.rss() / 1048576, 1);
progress(`Worker.start resolved in ${startedMs.toFixed(0)} ms (rss ${rssAtStartMb} MB); reading to seq ${last}`);

const processed = () => {
  let min = Number.POSITIVE_INFINITY;
  for (const a of worker.status()) min = Math.min(min, a.positions[source] ?? 0);
  return min;
};
let processedMs: number | undefined;
let lastReport = performance.now();
// Stall guard. A reader that holds back its last partial batch at the end of the stream never
// reaches `last` (seen before src/log/reader.ts flushed partial batches on idle: nats-core's
// QueuedIterator.getPending() over-counts after it ran the consumer's pushed pull callback in the
// same delivery). If reading makes no progress for STALL_MS while nothing is in flight, publish one
// "nudge" event (key "nudge", never a verified key) and count it; the time lost stays in the figure.
const STALL_MS = 2_000;
const publisher = (worker as unknown as { publisher: { pending: number } }).publisher;
let nudges = 0;
let stalledMs = 0;
let lastProgress = { at: performance.now(), position: 0 };
let lastPoll = performance.now();
let maxLoopLagMs = 0;
const js = jetstream(nc);
// A query that reads more than the bids (a join) has processed its input when every source and
// edge is processed to its end, and is done when every one is committed there (worker.lag(), with
// the processed positions beside the committed ones).
let allProcessed = false;
let allCommitted = false;
const lagPoll = readsMore
  ? setInterval(() => {
    const position = (id: string) => {
      const fed = new Set(worker.plan.actors.filter((a) => a.sources.includes(id)).map((a) => a.step));
      return Math.min(...worker.status().filter((a) => fed.has(a.step)).map((a) => a.positions[id] ?? 0));
    };
    const inputs = [...sourceEnds];
    if (!inputs.every(([id, end]) => position(id) >= end)) return;
    const edges = worker.plan.sources.filter((s) => s.edge);
    const ends = Promise.all(edges.map(async (s) => [s.id, await lastSequence(nc, s.stream, s.subject)] as const));
    void ends.then((edgeEnds) => {
      const all = [...inputs, ...edgeEnds];
      allProcessed ||= all.every(([id, end]) => position(id) >= end);
      allCommitted = all.every(([id, end]) => worker.committedPosition(id) >= end);
    }, () => undefined);
  }, 20)
  : undefined;
await until(
  () => {
    const now = performance.now();
    const position = processed();
    if (processedMs === undefined && (readsMore ? allProcessed : position >= last)) processedMs = now - t0;
    // A long gap since the previous poll is this event loop being busy (GC, a checkpoint's
    // serialisation), not a stalled reader: start the stall clock again.
    const lag = now - lastPoll;
    if (lag > maxLoopLagMs) maxLoopLagMs = lag;
    lastPoll = now;
    if (position !== lastProgress.position || lag > 100) lastProgress = { at: now, position };
    else if (
      !query && // a nudge is a bench event, not a bid
      position < last &&
      now - lastProgress.at > STALL_MS &&
      publisher.pending === 0 &&
      worker.status().every((a) => a.state === "running")
    ) {
      nudges++;
      stalledMs += now - lastProgress.at;
      progress(`reading stalled at ${position} of ${last} for ${(now - lastProgress.at).toFixed(0)} ms: nudge ${nudges}`);
      lastProgress = { at: now, position };
      void js.publish(subject, nudgeBytes(nudges)).catch((e) => progress(`nudge failed: ${String(e)}`));
    }
    if (now - lastReport > 5_000) {
      lastReport = now;
      const states = [...new Set(worker.status().map((a) => a.state))].join(",");
      progress(
        `${((now - t0) / 1000).toFixed(1)} s: processed ${position}, committed ${
          worker.committedPosition(source)
        } of ${last}; publisher pending ${publisher.pending}; actors ${states}`,
      );
    }
    return readsMore ? allCommitted : worker.committedPosition(source) >= last;
  },
  `${pipelineId}: committed position ${last}`,
  timeoutMs,
  5,
);
const committedMs = performance.now() - t0;
if (lagPoll) clearInterval(lagPoll);
if (heapSample) await heapSample.stop();
if (memTrace) clearInterval(memTrace);
processedMs ??= committedMs;
const cpuRun = cpuSeconds() - cpu0;
const status = worker.status();
const keys = status.reduce((n, a) => n + a.keys, 0);
const eventsIn = status.reduce((n, a) => n + a.eventsIn, 0);
const t1 = performance.now();
await worker.stop();
const stopMs = performance.now() - t1;
const memory = process.memoryUsage();
const { peakRssMb, vmHwmMb, atPeak } = sampler.stop();
await nc.close();

console.log(
  `RESULT ${
    JSON.stringify({
      mode,
      lastSeq: last,
      eventsIn,
      nudges,
      maxPollGapMs: round(maxLoopLagMs),
      stalledMs: round(stalledMs),
      keys,
      bootMs: round(bootMs),
      startedMs: round(startedMs),
      processedMs: round(processedMs),
      committedMs: round(committedMs),
      stopMs: round(stopMs),
      cpuSeconds: round(cpuRun, 2),
      rssBeforeStartMb,
      rssAtStartMb,
      peakRssMb,
      memoryAtPeak: atPeak,
      vmHwmMb,
      heapUsedMbAtEnd: round(memory.heapUsed / 1048576, 1),
      rssMbAtEnd: round(memory.rss / 1048576, 1),
      heapTotalMbAtEnd: round(memory.heapTotal / 1048576, 1),
      externalMbAtEnd: round(memory.external / 1048576, 1),
      log: logEvents.slice(0, 5),
    })
  }`,
);
process.exit(0);

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/** V8's sampling heap profiler; `stop()` writes the profile and prints the biggest allocation sites. */
async function startHeapSampling(file: string): Promise<{ stop(): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.startSampling", { samplingInterval: 32768 });
  return {
    async stop() {
      const { profile } = (await session.post("HeapProfiler.getSamplingProfile")) as { profile: { head: SamplingNode } };
      await session.post("HeapProfiler.stopSampling");
      writeFileSync(file, JSON.stringify(profile));
      // Live bytes by allocating frame, and by the innermost frame of this project's code on the stack.
      const bySite = new Map<string, number>();
      const byOurs = new Map<string, number>();
      let total = 0;
      const where = (f: SamplingNode["callFrame"]) =>
        `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(node_modules|main)\//, "")}:${f.lineNumber + 1}`;
      const walk = (n: SamplingNode, stack: SamplingNode["callFrame"][]) => {
        const s = [...stack, n.callFrame];
        if (n.selfSize > 0) {
          total += n.selfSize;
          const site = where(n.callFrame);
          bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
          const ours = s.filter((f) => /bench-worker|\/src\/|\/actors\//.test(f.url) && !f.url.includes("node_modules"));
          const key = ours.length > 0 ? ours.slice(-2).map(where).join(" <- ") : "(no project frame)";
          byOurs.set(key, (byOurs.get(key) ?? 0) + n.selfSize);
        }
        for (const c of n.children) walk(c, s);
      };
      walk(profile.head, []);
      const top = (m: Map<string, number>) =>
        [...m].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `      ${mb(v).toFixed(1).padStart(7)} MB  ${k}`).join(
          "\n",
        );
      progress(
        `heap sample: ${mb(total)} MB live (sampled) at end of processing; written to ${file}\n    by allocating frame:\n${
          top(bySite)
        }\n    by innermost project frames:\n${top(byOurs)}`,
      );
      session.disconnect();
    },
  };
}
