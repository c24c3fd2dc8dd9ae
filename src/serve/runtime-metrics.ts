/**
 * Process and runtime metrics for /metrics: prom-client's default metrics (`process_*`: CPU
 * seconds, resident memory, start time, open and maximum file descriptors; `nodejs_*`: heap and
 * heap spaces, event-loop lag, GC pauses, active handles, version) in a given registry, mended
 * with the platform's probes (src/platform/runtime-probes.ts) under the same names: the CPU
 * counters count from the process' start (prom-client's, from the registry's creation); GC pauses
 * come from the platform (prom-client's observer misses most on Node and sees none on Deno); and
 * so does the event loop's delay where prom-client's monitor does not work (Deno).
 *
 * @example
 * const registry = new Registry();
 * const stop = collectRuntimeMetrics(registry, platform.runtimeProbes);
 * await registry.metrics(); // "# HELP process_cpu_user_seconds_total ..."
 * stop();
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { EventLoopDelay, RuntimeProbes } from "../platform/platform.ts";

/** prom-client's own: the buckets of `nodejs_gc_duration_seconds`, and its event-loop sampling. */
const gcBuckets = [0.001, 0.01, 0.1, 1, 2, 5];
const eventLoopResolutionMs = 10;

/** The event-loop delay gauges: name, what of the samples since the last scrape, help. */
const delayGauges = [
  ["nodejs_eventloop_lag_min_seconds", (d) => d.min, "minimum"],
  ["nodejs_eventloop_lag_max_seconds", (d) => d.max, "maximum"],
  ["nodejs_eventloop_lag_mean_seconds", (d) => d.mean, "mean"],
  ["nodejs_eventloop_lag_stddev_seconds", (d) => d.stddev, "standard deviation"],
  ["nodejs_eventloop_lag_p50_seconds", (d) => d.percentile(50), "50th percentile"],
  ["nodejs_eventloop_lag_p90_seconds", (d) => d.percentile(90), "90th percentile"],
  ["nodejs_eventloop_lag_p99_seconds", (d) => d.percentile(99), "99th percentile"],
] as const satisfies readonly (readonly [string, (d: EventLoopDelay) => number, string])[];

/**
 * Register the runtime metrics in `registry`; the returned function stops what this module
 * started. prom-client's own GC observer and event-loop monitor cannot be stopped (it keeps no
 * handle on them): each call leaves one of each behind.
 */
export function collectRuntimeMetrics(registry: Registry, probes?: RuntimeProbes): () => void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: eventLoopResolutionMs });
  if (!probes) return () => {};
  // prom-client counts the CPU from here on: add what the process used before.
  const used = probes.cpuUsage();
  for (
    const [name, micros] of [
      ["process_cpu_user_seconds_total", used.user],
      ["process_cpu_system_seconds_total", used.system],
      ["process_cpu_seconds_total", used.user + used.system],
    ] as const
  ) {
    const counter = registry.getSingleMetric(name);
    if (counter instanceof Counter) counter.inc(micros / 1e6);
  }
  const stopGc = probes.observeGc ? observeGc(registry, probes.observeGc) : () => {};
  const stopDelay = probes.monitorEventLoopDelay ? monitorEventLoopDelay(registry, probes.monitorEventLoopDelay) : () => {};
  return () => {
    stopGc();
    stopDelay();
  };
}

/** `nodejs_gc_duration_seconds` from the platform's probe, in place of prom-client's (left observing nothing anyone reads). */
function observeGc(registry: Registry, observe: NonNullable<RuntimeProbes["observeGc"]>): () => void {
  registry.removeSingleMetric("nodejs_gc_duration_seconds");
  const gc = new Histogram({
    name: "nodejs_gc_duration_seconds",
    help: "Garbage collection pauses by kind (major, minor, incremental, weakcb), in seconds.",
    labelNames: ["kind"],
    buckets: gcBuckets,
    registers: [registry],
  });
  return observe((kind, seconds) => gc.observe({ kind }, seconds));
}

/** `nodejs_eventloop_lag_{min,max,...,p99}_seconds` from the platform's monitor, in place of prom-client's. */
function monitorEventLoopDelay(registry: Registry, monitor: NonNullable<RuntimeProbes["monitorEventLoopDelay"]>): () => void {
  const delay = monitor(eventLoopResolutionMs);
  const gauges: Gauge[] = [];
  for (const [name, , what] of delayGauges) {
    registry.removeSingleMetric(name);
    const help = `The ${what} of the event loop's delay samples since the last scrape, in seconds.`;
    // The registry collects in registration order: the first gauge sets them all, then the
    // samples start over (as prom-client does with Node's monitor).
    const collect = () => {
      delayGauges.forEach(([, pick], i) => gauges[i]!.set(pick(delay) / 1e9));
      delay.reset();
    };
    gauges.push(new Gauge({ name, help, registers: [registry], ...(gauges.length === 0 ? { collect } : {}) }));
  }
  return () => delay.disable();
}
