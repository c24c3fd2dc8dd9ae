/**
 * Operations endpoints' data: Prometheus text exposition (format 0.0.4) of a Worker's operator
 * actors and of the query API, readiness, and query latency.
 *
 * Metrics (labels `pipeline`, `step`, `partition` unless noted; counters count since this process
 * started, except dead letters and late events, which are recovered from the checkpoint):
 * - `eddy_events_in_total`, `eddy_outputs_total`, `eddy_late_events_total`,
 *   `eddy_checkpoints_total` (counters)
 * - `eddy_dead_letters_total{stage="operator"|"source"}` (source stage: worker-wide, no step)
 * - `eddy_checkpoint_duration_ms`, `eddy_checkpoint_bytes` (the last checkpoint), `eddy_state_keys`,
 *   `eddy_checkpoint_number` (gauges)
 * - `eddy_applied_position{source}`, `eddy_committed_position{source}` (gauges: stream sequences)
 * - `eddy_source_last_sequence{source,stream}` and `eddy_lag_events{source}` (the last sequence
 *   minus the committed position), from `jsm.streams.info`, polled in the background every
 *   `lagRefreshMs`: a scrape never waits on NATS. Absent until the first poll answered.
 * - `eddy_actor_state{state}`: 1 for the actor's current lifecycle state, 0 for the others
 * - `eddy_table_rows{table}`: rows in each served table's replica
 * - `eddy_query_duration_seconds{route}`: histogram of query API request durations (time to the
 *   response; for Server-Sent Events, to the start of the stream), by route pattern
 *
 * @example
 * const metrics = new ApiMetrics({ worker, lagRefreshMs: 5000 });
 * const text = metrics.render(catalog); // "# HELP eddy_events_in_total ..."
 * metrics.close();
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { lifecycleStates } from "../../actors/lifecycle.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Worker } from "../runtime/worker.ts";
import type { Catalog } from "./catalog.ts";

export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

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

/** A Prometheus histogram with fixed buckets, one series per label value. */
export class Histogram {
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly buckets: readonly number[]) {}

  observe(label: string, value: number): void {
    let s = this.#series.get(label);
    if (!s) this.#series.set(label, s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 });
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Observations with this label (all labels when absent). */
  count(label?: string): number {
    if (label !== undefined) return this.#series.get(label)?.count ?? 0;
    let n = 0;
    for (const s of this.#series.values()) n += s.count;
    return n;
  }

  render(out: Exposition, name: string, labelName: string): void {
    for (const [label, s] of [...this.#series.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      this.buckets.forEach((le, i) => out.sample(`${name}_bucket`, { [labelName]: label, le: String(le) }, s.counts[i]!));
      out.sample(`${name}_bucket`, { [labelName]: label, le: "+Inf" }, s.count);
      out.sample(`${name}_sum`, { [labelName]: label }, s.sum);
      out.sample(`${name}_count`, { [labelName]: label }, s.count);
    }
  }
}

/** Builds the text exposition: HELP and TYPE once per family, then its samples. */
export class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: "counter" | "gauge" | "histogram", help: string): this {
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Readonly<Record<string, string | number>>, value: number): this {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
    this.#lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}`);
    return this;
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
  readonly queryDuration = new Histogram(queryDurationBuckets);
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

  /** The whole exposition: worker metrics (when there is a worker), tables, query latency. */
  render(catalog: Pick<Catalog, "names" | "get">): string {
    const out = new Exposition();
    const worker = this.#worker;
    if (worker) this.#renderWorker(out, worker);

    out.family("eddy_table_rows", "gauge", "Rows in the in-memory replica of a result table.");
    for (const name of catalog.names()) {
      const replica = catalog.get(name);
      if (replica) out.sample("eddy_table_rows", { table: name }, replica.size);
    }

    out.family(
      "eddy_query_duration_seconds",
      "histogram",
      "Duration of query API requests, by route, until the response (for Server-Sent Events: until the stream starts).",
    );
    this.queryDuration.render(out, "eddy_query_duration_seconds", "route");
    return out.text();
  }

  #renderWorker(out: Exposition, worker: MetricsWorker): void {
    const pipeline = worker.pipeline.id;
    const status = worker.status();
    const per = (
      name: string,
      type: "counter" | "gauge",
      help: string,
      value: (a: (typeof status)[number]) => number,
      extra: Record<string, string> = {},
    ) => {
      out.family(name, type, help);
      for (const a of status) out.sample(name, { pipeline, step: a.step, partition: a.partition, ...extra }, value(a));
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
      out.sample("eddy_dead_letters_total", { pipeline, stage: "operator", step: a.step, partition: a.partition }, a.deadLetters);
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
    per(
      "eddy_checkpoint_duration_ms",
      "gauge",
      "Duration of the actor's last checkpoint, in milliseconds.",
      (a) => a.lastCheckpointMs,
    );
    per(
      "eddy_checkpoint_bytes",
      "gauge",
      "Bytes written by the actor's last checkpoint (state chunks and table pages).",
      (a) => a.lastCheckpointBytes,
    );
    per("eddy_checkpoint_number", "gauge", "Number of the actor's last committed checkpoint.", (a) => a.checkpoint);
    per("eddy_state_keys", "gauge", "Keys held in the actor's keyed state.", (a) => a.keys);

    const positions = (name: string, help: string, pick: (a: (typeof status)[number]) => Readonly<Record<string, number>>) => {
      out.family(name, "gauge", help);
      for (const a of status) {
        for (const [source, seq] of Object.entries(pick(a))) {
          out.sample(name, { pipeline, step: a.step, partition: a.partition, source }, seq);
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
              { pipeline, step: a.step, partition: a.partition, source },
              Math.max(0, last - (a.committed[source] ?? 0)),
            );
          }
        }
      }
    }

    out.family("eddy_actor_state", "gauge", "1 for the operator actor's current lifecycle state, 0 for the others.");
    for (const a of status) {
      for (const state of lifecycleStates) {
        out.sample("eddy_actor_state", { pipeline, step: a.step, partition: a.partition, state }, a.state === state ? 1 : 0);
      }
    }
  }
}
