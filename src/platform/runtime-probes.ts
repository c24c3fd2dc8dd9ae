/**
 * What /metrics needs from the runtime beyond prom-client's default metrics (RuntimeProbes): the
 * CPU time used since the process started, every garbage-collection pause (on Node from every
 * `gc` performance entry; on Deno from `v8.GCProfiler`), and on Deno the event loop's delay,
 * sampled by a repeating timer.
 * See docs/ARCHITECTURE.md, "Runtime probes", for where prom-client falls short, as measured.
 *
 * @example
 * const stop = denoRuntimeProbes.observeGc!((kind, seconds) => gcHistogram.observe({ kind }, seconds));
 * const delay = denoRuntimeProbes.monitorEventLoopDelay!(10);
 * delay.percentile(99) / 1e9; // seconds
 */
import { constants, PerformanceObserver } from "node:perf_hooks";
import process from "node:process";
import { GCProfiler } from "node:v8";
import type { EventLoopDelay, GcKind, RuntimeProbes } from "./platform.ts";

const unrefTimer = (globalThis as unknown as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer;

/** A repeating timer that does not keep the process alive. */
function every(ms: number, fn: () => void): () => void {
  const id = setInterval(fn, ms);
  unrefTimer?.(id as unknown as number);
  return () => clearInterval(id);
}

/** Node: every `gc` performance entry, by its kind (`entry.detail.kind`). */
function observeGcEntries(pause: (kind: GcKind, seconds: number) => void): () => void {
  const byKind: Readonly<Record<number, GcKind>> = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
  };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind ?? -1;
      pause(byKind[kind] ?? "major", entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return () => observer.disconnect();
}

/** V8's GC types as Deno's GCProfiler names them, by prom-client's kinds. */
const kinds: Readonly<Record<string, GcKind>> = {
  Scavenge: "minor",
  MinorMarkSweep: "minor",
  MarkSweepCompact: "major",
  IncrementalMarking: "incremental",
  ProcessWeakCallbacks: "weakcb",
};

/**
 * GCProfiler's `cost` is in nanoseconds on Deno (ext/node/ops/v8.rs: `cost_ns`; measured: 0.71 s
 * of GC in a 2.2 s run), in microseconds on Node; tests/deno.test.ts checks the sum stays below
 * the CPU time.
 */
const costToSeconds = 1e-9;

function observeGcProfiler(pause: (kind: GcKind, seconds: number) => void): () => void {
  const profiler = new GCProfiler();
  profiler.start();
  // Harvest often: the profiler keeps two heap snapshots per collection until stopped.
  const harvest = () => {
    const report = profiler.stop();
    profiler.start();
    for (const s of report?.statistics ?? []) pause(kinds[s.gcType] ?? "major", s.cost * costToSeconds);
  };
  const stop = every(1000, harvest);
  return () => {
    stop();
    harvest();
    profiler.stop();
  };
}

/** The last samples kept for percentiles: a minute at a 10 ms resolution. */
const keptSamples = 6000;

function monitorEventLoopDelay(resolutionMs: number): EventLoopDelay {
  const samples = new Float64Array(keptSamples);
  let n = 0; // samples since the last reset (the newest `keptSamples` of them are kept)
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let sum = 0;
  let squares = 0;
  let previous = performance.now();
  const stop = every(resolutionMs, () => {
    const now = performance.now();
    const ns = (now - previous) * 1e6;
    previous = now;
    samples[n % keptSamples] = ns;
    n++;
    if (ns < min) min = ns;
    if (ns > max) max = ns;
    sum += ns;
    squares += ns * ns;
  });
  return {
    get min() {
      return n > 0 ? min : 0;
    },
    get max() {
      return max;
    },
    get mean() {
      return n > 0 ? sum / n : 0;
    },
    get stddev() {
      return n > 1 ? Math.sqrt(Math.max(0, (squares - (sum * sum) / n) / (n - 1))) : 0;
    },
    percentile(p: number): number {
      const kept = samples.slice(0, Math.min(n, keptSamples)).sort();
      if (kept.length === 0) return 0;
      return kept[Math.min(kept.length - 1, Math.max(0, Math.ceil((p / 100) * kept.length) - 1))]!;
    },
    reset() {
      n = 0;
      min = Number.POSITIVE_INFINITY;
      max = sum = squares = 0;
    },
    disable: stop,
  };
}

const cpuUsage = () => process.cpuUsage();

/** Node: prom-client's event-loop monitor works there. */
export const nodeRuntimeProbes: RuntimeProbes = { cpuUsage, observeGc: observeGcEntries };

export const denoRuntimeProbes: RuntimeProbes = { cpuUsage, observeGc: observeGcProfiler, monitorEventLoopDelay };
