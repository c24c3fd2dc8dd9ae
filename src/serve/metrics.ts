/**
 * Operations endpoints' data: Prometheus text exposition (format 0.0.4) of a Worker's operator
 * actors, of the query API and of the process, readiness, and query latency. Names follow
 * Prometheus' conventions: base units in the name (seconds, bytes), counters end in `_total`.
 * The worker's metrics are read from `worker.status()` at each scrape (lag from a background poll:
 * a scrape never waits on NATS); query latency and the runtime metrics live in a prom-client
 * Registry of this ApiMetrics' own.
 * See docs/ARCHITECTURE.md, "Metrics", for every metric and its labels.
 *
 * @example
 * const metrics = new ApiMetrics({ worker, lagRefreshMs: 5000 });
 * const text = await metrics.render(catalog); // "# HELP eddy_events_in_total ..."
 * metrics.close();
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { Histogram, Registry } from "prom-client";
import { lifecycleStates } from "../../actors/lifecycle.ts";
import type { FixedBuckets } from "../core/checkpoint-histogram.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { RuntimeProbes } from "../platform/platform.ts";
import type { Worker } from "../runtime/worker.ts";
import type { Catalog } from "./catalog.ts";
import { collectRuntimeMetrics } from "./runtime-metrics.ts";

export const prometheusContentType: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** Upper bounds (seconds) of the query latency histogram's buckets. */
export const queryDurationBuckets = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
] as const;

/** What metrics read from a worker. */
export type MetricsWorker = Pick<Worker, "status" | "sourceDeadLetters" | "pipeline" | "plan" | "nc">;

/** Builds the text exposition: HELP and TYPE once per family, then its samples. */
export class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string): this {
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
    return this;
  }

  /** What goes between a sample's braces: `a="x",b="y"`, escaped. Render it once for many samples. */
  static labels(labels: Readonly<Record<string, string | number>>): string {
    return Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(",");
  }

  /** A sample; `labels` as a record, or as `Exposition.labels` rendered them. */
  sample(name: string, labels: Readonly<Record<string, string | number>> | string, value: number): this {
    const text = typeof labels === "string" ? labels : Exposition.labels(labels);
    this.#lines.push(`${name}${text ? `{${text}}` : ""} ${formatValue(value)}`);
    return this;
  }

  /** A histogram's series: cumulative `_bucket{le}` counts up to `+Inf`, then `_sum` and `_count`. */
  histogram(name: string, labels: string, buckets: Readonly<FixedBuckets>): this {
    const cumulative = buckets.cumulative();
    const prefix = labels ? `${name}_bucket{${labels},le="` : `${name}_bucket{le="`;
    buckets.bounds.forEach((le, i) => this.#lines.push(`${prefix}${formatValue(le)}"} ${cumulative[i]}`));
    this.#lines.push(`${prefix}+Inf"} ${buckets.count}`);
    this.sample(`${name}_sum`, labels, buckets.sum);
    return this.sample(`${name}_count`, labels, buckets.count);
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

export interface ApiMetricsOptions {
  readonly worker?: MetricsWorker;
  /** Poll each source stream's last sequence this often for the lag (default 5000; 0: no lag). */
  readonly lagRefreshMs?: number;
  readonly clock?: Clock;
  /**
   * The platform's (Platform.runtimeProbes). Without them the process metrics are prom-client's
   * alone: CPU counted from this object's creation, GC pauses undercounted on Node, none on Deno.
   */
  readonly runtimeProbes?: RuntimeProbes;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready (absent when ready). */
  readonly reasons: readonly string[];
  readonly actors?: { readonly total: number; readonly running: number };
  readonly tables: readonly string[];
}

/** Query latency, the lag poller, and the rendering of /metrics and /readyz. */
export class ApiMetrics {
  /** This ApiMetrics' own registry (never prom-client's global one): query latency, the runtime. */
  readonly registry = new Registry();
  readonly queryDuration = new Histogram({
    name: "eddy_query_duration_seconds",
    help: "Duration of query API requests, by route, until the response (for Server-Sent Events: until the stream starts).",
    labelNames: ["route"],
    buckets: [...queryDurationBuckets],
    registers: [this.registry],
  });
  readonly #stopRuntime: () => void;
  readonly #worker: MetricsWorker | undefined;
  readonly #clock: Clock;
  /** Last sequence per source stream, from the latest poll that answered. */
  readonly #lastSeq = new Map<string, number>();
  #timer: unknown;
  #closed = false;
  #jsm: JetStreamManager | undefined;

  constructor(options: ApiMetricsOptions = {}) {
    this.#worker = options.worker;
    this.#clock = options.clock ?? systemClock;
    this.#stopRuntime = collectRuntimeMetrics(this.registry, options.runtimeProbes);
    const every = options.lagRefreshMs ?? 5000;
    if (this.#worker && every > 0 && this.#worker.plan.sources.length > 0) {
      const poll = () => {
        this.#pollLag().finally(() => {
          if (!this.#closed) this.#timer = this.#clock.setTimeout(poll, every);
        });
      };
      poll();
    }
  }

  /** The last sequence of a source stream as of the latest poll, if any answered. */
  lastSequence(stream: string): number | undefined {
    return this.#lastSeq.get(stream);
  }

  async #pollLag(): Promise<void> {
    const worker = this.#worker!;
    try {
      this.#jsm ??= await jetstreamManager(worker.nc);
      for (const source of worker.plan.sources) {
        if (this.#closed) return;
        const info = await this.#jsm.streams.info(source.stream);
        this.#lastSeq.set(source.stream, info.state.last_seq);
      }
    } catch {
      // NATS unreachable or the stream is gone: keep the last values; the next poll tries again.
    }
  }

  close(): void {
    if (!this.#closed) this.#stopRuntime();
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
  }

  /** Ready: every actor running or checkpointing, and every table the worker writes replicated. */
  readiness(catalog: Pick<Catalog, "names">): Readiness {
    const tables = catalog.names();
    const reasons: string[] = [];
    const worker = this.#worker;
    if (!worker) return { ready: true, reasons, tables };
    const status = worker.status();
    const running = status.filter((a) => a.state === "running" || a.state === "checkpointing").length;
    const notRunning = status.filter((a) => a.state !== "running" && a.state !== "checkpointing");
    if (notRunning.length > 0) {
      const sample = notRunning.slice(0, 5).map((a) => `${a.step}/${a.partition} is ${a.state}${a.error ? ` (${a.error})` : ""}`);
      reasons.push(
        `${notRunning.length} of ${status.length} operator actors not running: ${sample.join(", ")}${
          notRunning.length > 5 ? ", ..." : ""
        }`,
      );
    }
    const missing = worker.plan.tables.filter((t) => !tables.includes(t));
    if (missing.length > 0) reasons.push(`result tables not loaded yet: ${missing.join(", ")}`);
    return { ready: reasons.length === 0, reasons, actors: { total: status.length, running }, tables };
  }

  /** The whole exposition: worker metrics (when there is a worker), tables, query latency, the process. */
  async render(catalog: Pick<Catalog, "names" | "get">): Promise<string> {
    const out = new Exposition();
    const worker = this.#worker;
    if (worker) this.#renderWorker(out, worker);

    out.family("eddy_table_rows", "gauge", "Rows in the in-memory replica of a result table.");
    for (const name of catalog.names()) {
      const replica = catalog.get(name);
      if (replica) out.sample("eddy_table_rows", { table: name }, replica.size);
    }
    return `${out.text()}${await this.registry.metrics()}`;
  }

  #renderWorker(out: Exposition, worker: MetricsWorker): void {
    const pipeline = worker.pipeline.id;
    const status = worker.status();
    // Each actor's labels, rendered once for all its samples.
    const rendered = new Map(status.map((a) => [a, Exposition.labels({ pipeline, step: a.step, partition: a.partition })]));
    const of = (a: (typeof status)[number], extra?: Readonly<Record<string, string>>) =>
      extra ? `${rendered.get(a)!},${Exposition.labels(extra)}` : rendered.get(a)!;
    const per = (
      name: string,
      type: "counter" | "gauge",
      help: string,
      value: (a: (typeof status)[number]) => number,
    ) => {
      out.family(name, type, help);
      for (const a of status) out.sample(name, of(a), value(a));
    };
    per(
      "eddy_events_in_total",
      "counter",
      "Records delivered to an operator actor since this process started.",
      (a) => a.eventsIn,
    );
    per(
      "eddy_outputs_total",
      "counter",
      "Records an operator actor emitted downstream since this process started.",
      (a) => a.outputs,
    );

    out.family(
      "eddy_dead_letters_total",
      "counter",
      "Records set aside to the dead-letter stream: by an operator (stage=operator) or while decoding and in stateless steps (stage=source, since this process started).",
    );
    for (const a of status) {
      out.sample("eddy_dead_letters_total", of(a, { stage: "operator" }), a.deadLetters);
    }
    out.sample("eddy_dead_letters_total", { pipeline, stage: "source" }, worker.sourceDeadLetters);

    per(
      "eddy_late_events_total",
      "counter",
      "Events that arrived after their window closed (allowed lateness included).",
      (a) => a.lateEvents,
    );
    per(
      "eddy_checkpoints_total",
      "counter",
      "Checkpoints an operator actor committed since this process started.",
      (a) => a.checkpoints,
    );
    const histograms = (name: string, help: string, pick: (a: (typeof status)[number]) => Readonly<FixedBuckets>) => {
      out.family(name, "histogram", help);
      for (const a of status) out.histogram(name, of(a), pick(a));
    };
    histograms(
      "eddy_checkpoint_duration_seconds",
      "Duration of each checkpoint the actor committed since this process started, in seconds.",
      (a) => a.checkpointHistogram.seconds,
    );
    histograms(
      "eddy_checkpoint_size_bytes",
      "Bytes each checkpoint of the actor wrote (state chunks and table pages), since this process started.",
      (a) => a.checkpointHistogram.bytes,
    );
    per("eddy_checkpoint_number", "gauge", "Number of the actor's last committed checkpoint.", (a) => a.checkpoint);
    per("eddy_state_keys", "gauge", "Keys held in the actor's keyed state.", (a) => a.keys);

    const positions = (name: string, help: string, pick: (a: (typeof status)[number]) => Readonly<Record<string, number>>) => {
      out.family(name, "gauge", help);
      for (const a of status) {
        for (const [source, seq] of Object.entries(pick(a))) {
          out.sample(name, of(a, { source }), seq);
        }
      }
    };
    positions("eddy_applied_position", "Last source stream sequence folded into the actor's state.", (a) => a.positions);
    positions("eddy_committed_position", "Source stream sequence of the actor's last committed checkpoint.", (a) => a.committed);

    const streams = new Map(worker.plan.sources.map((s) => [s.id, s.stream]));
    const known = worker.plan.sources.filter((s) => this.#lastSeq.has(s.stream));
    if (known.length > 0) {
      out.family("eddy_source_last_sequence", "gauge", "Last sequence of the source stream (polled in the background).");
      for (const s of known) {
        out.sample("eddy_source_last_sequence", { pipeline, source: s.id, stream: s.stream }, this.#lastSeq.get(s.stream)!);
      }
      out.family(
        "eddy_lag_events",
        "gauge",
        "Source stream's last sequence minus the actor's committed position (as of the last poll).",
      );
      const sourcesOf = new Map(worker.plan.actors.map((p) => [p.step, p.sources]));
      for (const a of status) {
        for (const source of sourcesOf.get(a.step) ?? []) {
          const last = this.#lastSeq.get(streams.get(source) ?? "");
          if (last !== undefined) {
            out.sample(
              "eddy_lag_events",
              of(a, { source }),
              Math.max(0, last - (a.committed[source] ?? 0)),
            );
          }
        }
      }
    }

    out.family("eddy_actor_state", "gauge", "1 for the operator actor's current lifecycle state, 0 for the others.");
    const states = lifecycleStates.map((state) => [state, Exposition.labels({ state })] as const);
    for (const a of status) {
      for (const [state, label] of states) out.sample("eddy_actor_state", `${of(a)},${label}`, a.state === state ? 1 : 0);
    }
  }
}
