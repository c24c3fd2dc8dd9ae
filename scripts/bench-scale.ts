/**
 * Scale-out cases of `npm run bench`, with workers as `eddy run` child processes over one server:
 * - `rebalance-pause`: one worker holds both partitions of a pipeline (100,000 keys each); a
 *   second joins and one partition moves by graceful handoff, once the joiner has read its state
 *   (a warm-up). Reported: from the old owner's release (its final checkpoint written, lease given
 *   back) to the new owner reading, and the whole pause from the old owner stopping to the new one
 *   reading; the same without a warm-up (`--warm-up-ms 0`) beside it, and the ratio.
 * - `failover`: two workers share eight partitions; one is SIGKILLed; reported: from the kill to
 *   the survivor reading every partition, against the membership timeout (default settings).
 * - `scale-cpu`: CPU seconds per million events, all workers plus nats-server, for 1 and 3
 *   workers of the core-aggregate pipeline over a backlog in a source partitioned by subject (8
 *   partitions): every worker reads only its partitions' subjects. A worker's CPU counts from
 *   when it first took partitions (start-up is not counted), the server's after the backlog.
 * - `scale-2-workers`: events per second of 2 workers against 1 on the same run (on 2 cores,
 *   beside nats-server; reported, no target).
 * - `scale-repartitioned`: CPU seconds per million events and events/s of 1 and 3 workers over a
 *   stream that is not partitioned, its source `repartition: true` (the holder of its partition
 *   writes an edge with a subject per partition), against one worker reading it directly.
 * Times come from the workers' own JSON log lines (one machine, one clock).
 *
 * @example
 * npx tsx scripts/bench.ts --cases rebalance-pause,failover
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { NatsConnection } from "@nats-io/nats-core";
import { pipeline } from "../src/pipeline/pipeline.ts";
import {
  BenchEvent,
  benchPipeline,
  cpuSeconds,
  ensureStream,
  partitionedSubject,
  publishEvents,
  round,
  totalsExact,
} from "./bench-common.ts";

/** The pipelines the cases run (`eddy run scripts/bench-scale.ts --export rebalancePipeline`). */
export const rebalancePipeline = () => benchPipeline("bench-rebalance", "bench-rebalance", "bench_rebalance_totals", 2);
/** The same, handed over without a warm-up (`--warm-up-ms 0`), beside it in the same run. */
export const rebalanceColdPipeline = () =>
  benchPipeline("bench-rebalance-cold", "bench-rebalance-cold", "bench_rebalance_cold_totals", 2);
export const failoverPipeline = () => benchPipeline("bench-failover", "bench-failover", "bench_failover_totals", 8);

/** The core-aggregate pipeline over a source partitioned by subject, for `workers` workers. */
const scalePipeline = (workers: number) =>
  benchPipeline(
    `bench-scale-${workers}`,
    `bench-scale-${workers}`,
    `bench_scale_${workers}_totals`,
    8,
    `bench.scale.${workers}.{partition}`,
  );
export const scalePipeline1 = () => scalePipeline(1);
export const scalePipeline2 = () => scalePipeline(2);
export const scalePipeline3 = () => scalePipeline(3);
/** The same pipeline over a source read whole (the design a partitioned source replaces), for 3 workers. */
export const scaleWholePipeline3 = () =>
  benchPipeline("bench-scale-whole3", "bench-scale-whole3", "bench_scale_whole3_totals", 8);
/** The same over a source read by one worker and repartitioned through an edge (`repartition: true`), for `workers` workers. */
const repartitionedPipeline = (workers: number) => {
  const p = pipeline(`bench-scale-repartitioned${workers}`, { partitions: 8 });
  p.source("events", { stream: `bench-scale-repartitioned${workers}`, schema: BenchEvent, repartition: true })
    .keyBy("by-key", "key")
    .aggregate("totals", (a) => ({ count: a.count(), sum: a.sum("v") }))
    .toTable(`bench_scale_repartitioned${workers}_totals`);
  return p;
};
export const scaleRepartitionedPipeline1 = () => repartitionedPipeline(1);
export const scaleRepartitionedPipeline3 = () => repartitionedPipeline(3);
/** A source read whole by one worker: what a repartitioned source is measured against. */
export const scaleWholePipeline1 = () =>
  benchPipeline("bench-scale-whole1", "bench-scale-whole1", "bench_scale_whole1_totals", 8);

interface LogLine {
  time: string;
  event: string;
  [field: string]: unknown;
}

interface Child {
  readonly process: ChildProcess;
  readonly lines: LogLine[];
  readonly exited: Promise<unknown>;
  /** Its CPU seconds, and the time, when it first took partitions (its start-up is behind it). */
  started?: { cpu: number; at: number };
}

function startWorker(url: string, exportName: string, id: string, extra: string[] = []): Child {
  const child = spawn(
    process.execPath,
    [
      "bin/eddy.js",
      "run",
      "scripts/bench-scale.ts",
      "--export",
      exportName,
      "--nats",
      url,
      "--worker-id",
      id,
      "--log-format",
      "json",
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NATS_URL: "" } },
  );
  const lines: LogLine[] = [];
  let rest = "";
  const take = (chunk: Buffer) => {
    const text = rest + chunk.toString();
    const parts = text.split("\n");
    rest = parts.pop()!;
    for (const part of parts) {
      if (part.startsWith("{")) {
        try {
          const line = JSON.parse(part) as LogLine;
          lines.push(line);
          if (line.event === "partitions-taken" && !result.started) {
            result.started = { cpu: cpuSeconds(child.pid!), at: performance.now() };
          }
        } catch { /* a partial or foreign line */ }
      }
    }
  };
  const result: Child = { process: child, lines, exited: new Promise((r) => child.on("exit", r)) };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  return result;
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    // A probe's request may time out on a busy machine: that is a "not yet".
    const found = await Promise.resolve().then(probe).catch((e) => void (lastError = e));
    if (found !== undefined) return found;
    if (Date.now() > deadline) {
      throw new Error(`bench-scale: timed out waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

const at = (line: LogLine) => Date.parse(line.time);
const after = (lines: LogLine[], event: string, from: number) => lines.find((l) => l.event === event && at(l) >= from);

export async function benchScale(
  o: {
    nc: NatsConnection;
    url: string;
    serverPid: number;
    log: (line: string) => void;
    wanted: ReadonlySet<string>;
    /** Events of each scale-cpu / scale-2-workers run. */
    scaleEvents: number;
  },
): Promise<Record<string, Record<string, unknown>>> {
  const cases: Record<string, Record<string, unknown>> = {};
  const children: Child[] = [];
  const stopAll = async () => {
    for (const c of children) c.process.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
    children.length = 0;
  };
  try {
    if (o.wanted.has("rebalance-pause")) {
      const keys = 200_000;
      /** One handoff of a partition holding half the keys: the times from the workers' logs. */
      const handoff = async (stream: string, exportName: string, extra: string[]) => {
        const subject = stream.replace("bench-", "bench.");
        await ensureStream(o.nc, stream, subject);
        await publishEvents(o.nc, subject, 0, keys, keys);
        const first = startWorker(o.url, exportName, "first", extra);
        children.push(first);
        await until("the first worker to run", 60_000, () => first.lines.find((l) => l.event === "running"));
        // Every key in state and committed, before the second worker joins.
        await until("the first worker to commit every event", 60_000, async () => {
          const { readCommitted } = await import("../src/state/checkpoint.ts");
          const committed = await readCommitted(o.nc, stream);
          return committed.length === 2 && committed.every((c) => (c.manifest.positions.events ?? 0) >= keys) ? true : undefined;
        });
        const flowing = publishEvents(o.nc, subject, keys, keys + 20_000, keys);
        const joinedAt = Date.now();
        const second = startWorker(o.url, exportName, "second", extra);
        children.push(second);
        const reading = await until("the moved partition to be read by the second worker", 60_000, () => {
          const taken = after(second.lines, "partitions-taken", joinedAt);
          return taken ? after(second.lines, "reading", at(taken)) : undefined;
        });
        const releasing = after(first.lines, "partitions-releasing", joinedAt)!;
        const released = after(first.lines, "partitions-released", joinedAt)!;
        const warm = after(second.lines, "partition-warm", joinedAt);
        await flowing;
        await stopAll();
        return {
          releaseToReadingMs: at(reading) - at(released),
          stopToReadingMs: at(reading) - at(releasing),
          finalCheckpointMs: at(released) - at(releasing),
          joinToReleaseMs: at(releasing) - joinedAt,
          ...(warm ? { warmUpMs: warm.ms } : {}),
        };
      };
      const cold = await handoff("bench-rebalance-cold", "rebalanceColdPipeline", ["--warm-up-ms", "0"]);
      const warm = await handoff("bench-rebalance", "rebalancePipeline", []);
      cases["rebalance-pause"] = {
        seconds: warm.releaseToReadingMs / 1000,
        ...warm,
        keysMoved: keys / 2,
        withoutWarmUp: cold,
        ratio: round(warm.releaseToReadingMs / cold.releaseToReadingMs, 2),
        target: `release to processing < 500 ms: ${warm.releaseToReadingMs < 500 ? "met" : "MISSED"}`,
        note:
          "one of 2 partitions (100,000 keys each) moved by graceful handoff when a second eddy run joined, once the joiner had its state warm (warmUpMs: from its start of reading the state to caught up); withoutWarmUp: the same with --warm-up-ms 0, in the same run; ratio: warm/cold release to reading. From the workers' JSON logs: partitions-releasing (old owner stops it), partitions-released (final checkpoint written, lease given back), reading (new owner recovered it and reads)",
      };
      o.log(
        `rebalance-pause: release to reading ${warm.releaseToReadingMs} ms warm, ${cold.releaseToReadingMs} ms cold; stop to reading ${warm.stopToReadingMs} ms warm, ${cold.stopToReadingMs} ms cold`,
      );
    }
    if (o.wanted.has("failover")) {
      await ensureStream(o.nc, "bench-failover", "bench.failover");
      await publishEvents(o.nc, "bench.failover", 0, 50_000, 10_000);
      const a = startWorker(o.url, "failoverPipeline", "a");
      const b = startWorker(o.url, "failoverPipeline", "b");
      children.push(a, b);
      const { readGroup } = await import("../src/cluster/group.ts");
      await until("both workers to hold partitions", 60_000, async () => {
        const owners = new Set(Object.values((await readGroup(o.nc, "bench-failover"))?.owners ?? {}));
        return owners.has("a") && owners.has("b") ? true : undefined;
      });
      const flowing = publishEvents(o.nc, "bench.failover", 50_000, 70_000, 10_000);
      const killedAt = Date.now();
      a.process.kill("SIGKILL");
      await a.exited;
      const reading = await until("the survivor to read every partition", 60_000, () => {
        const taken = after(b.lines, "partitions-taken", killedAt);
        return taken ? after(b.lines, "reading", at(taken)) : undefined;
      });
      await flowing;
      const failoverMs = at(reading) - killedAt;
      const timeoutMs = 5000;
      cases.failover = {
        seconds: failoverMs / 1000,
        membershipTimeoutMs: timeoutMs,
        target: `under the membership timeout + 1 s: ${failoverMs < timeoutMs + 1000 ? "met" : "MISSED"}`,
        note:
          "2 eddy run workers, 8 partitions, default settings; from SIGKILL of one to the survivor reading its partitions (its JSON log: partitions-taken, then reading)",
      };
      o.log(`failover: ${failoverMs} ms from SIGKILL to the survivor reading (membership timeout ${timeoutMs} ms)`);
      await stopAll();
    }
    type Run = { cpuPerMillion: number; eventsPerSec: number; workerCpu: number; serverCpu: number };
    /** One run over a fresh backlog: `n` workers of pipeline `exportName`, until its table `run` is exact. */
    const scaleRun = async (run: string, n: number, exportName: string, partitioned: boolean): Promise<Run> => {
      const events = o.scaleEvents;
      const keys = 1_000;
      const prefix = `bench.scale.${run}`;
      await ensureStream(o.nc, `bench-scale-${run}`, `${prefix}.*`);
      // A backlog, published first: the workers read in full batches, and the publishing is not counted.
      const subject = partitioned ? partitionedSubject(`${prefix}.{partition}`, keys, 8) : `${prefix}.events`;
      await publishEvents(o.nc, subject, 0, events, keys);
      const serverCpu0 = cpuSeconds(o.serverPid);
      const workers = Array.from({ length: n }, (_, i) => startWorker(o.url, exportName, `w${i + 1}`));
      children.push(...workers);
      await until(`${n} workers to count every event`, 300_000, async () => {
        await new Promise((r) => setTimeout(r, 250));
        return (await totalsExact(o.nc, `bench_scale_${run}_totals`, events, keys)) ? true : undefined;
      });
      const end = performance.now();
      const { readGroup } = await import("../src/cluster/group.ts");
      const owners = new Set(Object.values((await readGroup(o.nc, `bench-scale-${run}`))?.owners ?? {}));
      if (owners.size !== n || workers.some((w) => !w.started)) throw new Error(`bench-scale: not all ${n} workers took part`);
      const seconds = (end - Math.min(...workers.map((w) => w.started!.at))) / 1000;
      const workerCpu = workers.reduce((sum, w) => sum + cpuSeconds(w.process.pid!) - w.started!.cpu, 0);
      const serverCpu = cpuSeconds(o.serverPid) - serverCpu0;
      const result = {
        cpuPerMillion: round(((workerCpu + serverCpu) / events) * 1e6, 2),
        eventsPerSec: Math.round(events / seconds),
        workerCpu: round(workerCpu, 2),
        serverCpu: round(serverCpu, 2),
      };
      o.log(`scale ${run} (${n} worker(s)): ${JSON.stringify(result)}`);
      const troubles = workers.flatMap((w) => w.lines.filter((l) => /suspend|reset|fail|restart/.test(l.event)));
      if (troubles.length > 0) {
        o.log(`  ${troubles.length} suspensions, resets, failures: ${JSON.stringify(troubles.slice(0, 5))}`);
      }
      await stopAll();
      return result;
    };
    if (o.wanted.has("scale-repartitioned")) {
      const direct = await scaleRun("whole1", 1, "scaleWholePipeline1", false);
      const one = await scaleRun("repartitioned1", 1, "scaleRepartitionedPipeline1", false);
      const three = await scaleRun("repartitioned3", 3, "scaleRepartitionedPipeline3", false);
      cases["scale-repartitioned"] = {
        oneWorker: one,
        threeWorkers: three,
        oneWorkerReadingDirectly: direct,
        cpuRatioToDirect: round(one.cpuPerMillion / direct.cpuPerMillion, 2),
        rateRatioToDirect: round(one.eventsPerSec / direct.eventsPerSec, 2),
        threeWorkersCpuRatio: round(three.cpuPerMillion / one.cpuPerMillion, 2),
        note:
          `CPU seconds per million events (workers from their first partitions taken, plus nats-server after the backlog was published) and events/s, over a backlog of ${o.scaleEvents} events and 1,000 keys in a stream that is not partitioned; core-aggregate pipeline, 8 partitions, its source repartition: true (one worker reads it and writes an edge with a subject per partition); oneWorkerReadingDirectly: the same source read whole by one worker, without the edge`,
      };
    }
    if (o.wanted.has("scale-cpu") || o.wanted.has("scale-2-workers")) {
      const events = o.scaleEvents;
      const runs = new Map<number | "whole3", Run>();
      const counts: (number | "whole3")[] = [
        1,
        ...(o.wanted.has("scale-2-workers") ? [2] : []),
        ...(o.wanted.has("scale-cpu") ? [3, "whole3" as const] : []),
      ];
      for (const run of counts) {
        const n = typeof run === "number" ? run : 3;
        const exportName = run === "whole3" ? "scaleWholePipeline3" : `scalePipeline${n}`;
        runs.set(run, await scaleRun(String(run), n, exportName, typeof run === "number"));
      }
      const one = runs.get(1)!;
      if (runs.has(3)) {
        const three = runs.get(3)!;
        const ratio = round(three.cpuPerMillion / one.cpuPerMillion, 2);
        const whole = runs.get("whole3")!;
        cases["scale-cpu"] = {
          ratio,
          oneWorker: one,
          threeWorkers: three,
          threeWorkersReadingWhole: whole,
          wholeRatio: round(whole.cpuPerMillion / one.cpuPerMillion, 2),
          target: `3 workers at most 1.15x the CPU of one: ${ratio <= 1.15 ? "met" : "MISSED"}`,
          note:
            `CPU seconds per million events, workers (from each one's first partitions taken: start-up not counted) plus nats-server (after the backlog was published), over a backlog of ${events} events and 1,000 keys; core-aggregate pipeline, source partitioned by subject (8 partitions); threeWorkersReadingWhole: the same over a source read whole by every worker (each keeps its partitions' events), wholeRatio its CPU against one worker's`,
        };
      }
      if (runs.has(2)) {
        const two = runs.get(2)!;
        cases["scale-2-workers"] = {
          ratio: round(two.eventsPerSec / one.eventsPerSec, 2),
          oneWorker: one,
          twoWorkers: two,
          note:
            `events/s over a backlog of ${events} events, from the first worker taking partitions to every row exact (rebalancing as the others join included); on 2 cores beside nats-server, so no target`,
        };
      }
    }
  } finally {
    await stopAll();
  }
  return cases;
}
