/**
 * Operations endpoints over a live pipeline: a real nats-server, the coffee-shop pipeline run by a
 * Worker in this process, and the query API's fetch handler called directly. /metrics agrees with
 * worker.status(), /healthz answers, /readyz turns 503 once the worker stops, query latency is
 * observed, and the lag comes from the background poll of the source stream.
 */
import { spawn } from "node:child_process";
import { PerformanceObserver } from "node:perf_hooks";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { runCommand } from "../src/cli/run.ts";
import { nodeRuntimeProbes } from "../src/platform/runtime-probes.ts";
import { Worker } from "../src/runtime/worker.ts";
import { createQueryApi, type QueryApi } from "../src/serve/api.ts";
import { Catalog } from "../src/serve/catalog.ts";
import { checkpointBytesBuckets, checkpointSecondsBuckets } from "../src/core/checkpoint-histogram.ts";
import { conventionViolations, parseExposition, promClientTotalGauges, type Sample } from "./support/exposition.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

/** The strict parse, with each family's TYPE and which have a HELP. */
function parse(text: string) {
  const { families, samples } = parseExposition(text);
  const types = new Map([...families.values()].map((f) => [f.name, f.type]));
  const helps = new Set([...families.values()].filter((f) => f.help !== undefined).map((f) => f.name));
  return { families, samples, types, helps };
}

/** Keep the CPU busy for `ms`: the event loop is blocked meanwhile (what the lag metrics must see). */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Allocate short-lived objects, `rounds` times 300,000: about one young-generation collection each. */
function churn(rounds = 1): number {
  let n = 0;
  for (let i = 0; i < rounds * 300_000; i++) n += [{ i, s: `k${i}` }].length;
  return n;
}

const ORDERS = 2000;

describe("/metrics, /healthz and /readyz over a live pipeline", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  let worker: Worker;
  let catalog: Catalog;
  let api: QueryApi;
  const auth = { headers: { Authorization: "Bearer s3cret" } };
  const get = (path: string, init?: RequestInit) => Promise.resolve(api.fetch(new Request(`http://eddy.test${path}`, init)));
  const scrape = async () => {
    const response = await get("/metrics", auth);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return parse(await response.text());
  };
  const sum = (samples: Sample[], name: string, where: (l: Record<string, string>) => boolean = () => true) =>
    samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);

  beforeAll(async () => {
    nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 11, count: ORDERS });
    worker = await Worker.start(nc, coffeeShop(), { checkpointMs: 50 });
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "pipeline caught up" });
    catalog = await Catalog.open(nc, { refreshMs: 0 });
    api = createQueryApi(catalog, { worker, lagRefreshMs: 100, token: "s3cret", runtimeProbes: nodeRuntimeProbes });
  }, 60_000);

  afterAll(async () => {
    api?.close();
    await catalog?.close();
    await worker?.stop();
  }, 30_000);

  it("answers /healthz and /readyz without the token; /metrics needs it", async () => {
    const health = await get("/healthz");
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await get("/readyz");
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as any;
    expect(body.ready).toBe(true);
    expect(body.actors.running).toBe(body.actors.total);
    expect(body.actors.total).toBe(worker.status().length);
    expect(body.tables).toContain("revenue_by_store");
    expect((await get("/metrics")).status).toBe(401);
    expect((await get("/metrics", auth)).status).toBe(200);
  });

  it("exposes the worker's metrics, consistent with worker.status()", async () => {
    const api2 = createQueryApi(catalog, { worker, lagRefreshMs: 0, runtimeProbes: nodeRuntimeProbes }); // no token, no lag poller
    try {
      const response = await api2.fetch(new Request("http://eddy.test/metrics"));
      const { samples, types, helps } = parse(await response.text());
      const status = worker.status();
      const steps = [...new Set(status.map((a) => a.step))];
      expect(steps).toContain("store-revenue");

      for (
        const [name, type] of [
          ["eddy_events_in_total", "counter"],
          ["eddy_outputs_total", "counter"],
          ["eddy_dead_letters_total", "counter"],
          ["eddy_late_events_total", "counter"],
          ["eddy_checkpoints_total", "counter"],
          ["eddy_checkpoint_duration_seconds", "histogram"],
          ["eddy_checkpoint_size_bytes", "histogram"],
          ["eddy_checkpoint_number", "gauge"],
          ["eddy_state_keys", "gauge"],
          ["eddy_committed_position", "gauge"],
          ["eddy_actor_state", "gauge"],
          ["eddy_table_rows", "gauge"],
          ["eddy_query_duration_seconds", "histogram"],
          ["process_cpu_seconds_total", "counter"],
          ["process_resident_memory_bytes", "gauge"],
          ["process_start_time_seconds", "gauge"],
          ["process_open_fds", "gauge"],
          ["nodejs_heap_size_used_bytes", "gauge"],
          ["nodejs_gc_duration_seconds", "histogram"],
          ["nodejs_eventloop_lag_p99_seconds", "gauge"],
        ] as const
      ) {
        expect(types.get(name), name).toBe(type);
        expect(helps.has(name), name).toBe(true);
      }
      // The pipeline is idle (caught up), so the counters are stable between status() and the scrape.
      for (const step of steps) {
        const ofStep = status.filter((a) => a.step === step);
        const isStep = (l: Record<string, string>) => l.step === step;
        expect(sum(samples, "eddy_events_in_total", isStep), step).toBe(ofStep.reduce((n, a) => n + a.eventsIn, 0));
        expect(sum(samples, "eddy_state_keys", isStep), step).toBe(ofStep.reduce((n, a) => n + a.keys, 0));
        expect(sum(samples, "eddy_checkpoints_total", isStep), step).toBeGreaterThan(0);
        expect(samples.filter((s) => s.name === "eddy_events_in_total" && isStep(s.labels))).toHaveLength(ofStep.length);
      }
      // Every order reaches the per-store aggregate once.
      expect(sum(samples, "eddy_events_in_total", (l) => l.step === "store-revenue")).toBe(ORDERS);
      expect(sum(samples, "eddy_state_keys", (l) => l.step === "store-revenue")).toBe(5);
      for (const a of status) {
        const labels = (l: Record<string, string>) => l.step === a.step && l.partition === String(a.partition);
        expect(sum(samples, "eddy_committed_position", (l) => labels(l) && l.source === "orders")).toBe(a.committed.orders ?? 0);
        expect(sum(samples, "eddy_actor_state", (l) => labels(l) && l.state === "running")).toBe(a.state === "running" ? 1 : 0);
        expect(sum(samples, "eddy_actor_state", labels)).toBe(1);
      }
      expect(sum(samples, "eddy_dead_letters_total", (l) => l.stage === "source")).toBe(worker.sourceDeadLetters);
      // Every checkpoint of every actor is in its histograms, with the buckets and sums it observed.
      for (const a of status) {
        const labels = (l: Record<string, string>) => l.step === a.step && l.partition === String(a.partition);
        for (
          const [name, buckets, of] of [
            ["eddy_checkpoint_duration_seconds", checkpointSecondsBuckets, a.checkpointHistogram.seconds],
            ["eddy_checkpoint_size_bytes", checkpointBytesBuckets, a.checkpointHistogram.bytes],
          ] as const
        ) {
          expect(sum(samples, `${name}_count`, labels), `${name} ${a.step}/${a.partition}`).toBe(a.checkpoints);
          expect(sum(samples, `${name}_sum`, labels)).toBe(of.sum);
          const les = samples.filter((s) => s.name === `${name}_bucket` && labels(s.labels)).map((s) => s.labels.le);
          expect(les).toEqual([...buckets.map(String), "+Inf"]);
        }
      }
      expect(sum(samples, "eddy_checkpoint_size_bytes_sum")).toBeGreaterThan(0);
      expect(JSON.parse(JSON.stringify(status[0]))).not.toHaveProperty("checkpointHistogram"); // not in GET /actors
      expect(sum(samples, "eddy_checkpoint_duration_seconds_sum")).toBeGreaterThan(0);
      // A 50 ms checkpoint interval over a few thousand orders: no checkpoint took 10 s or wrote 256 MiB.
      expect(sum(samples, "eddy_checkpoint_duration_seconds_bucket", (l) => l.le === "10")).toBe(
        sum(samples, "eddy_checkpoint_duration_seconds_count"),
      );
      expect(sum(samples, "eddy_table_rows", (l) => l.table === "revenue_by_store")).toBe(5);
      // No poller: no lag rather than a stale or blocking one.
      expect(samples.some((s) => s.name === "eddy_lag_events")).toBe(false);
    } finally {
      api2.close();
    }
  });

  it("parses strictly and follows Prometheus' naming conventions", async () => {
    const { families } = await scrape(); // parseExposition throws on any malformed line
    expect(conventionViolations(families, promClientTotalGauges)).toEqual([]);
    expect(families.has("eddy_checkpoint_duration_ms")).toBe(false);
    expect(families.has("eddy_checkpoint_bytes")).toBe(false);
  });

  it("exposes the process: CPU seconds, resident memory, start time, open file descriptors, heap", async () => {
    const rss = process.memoryUsage.rss();
    const cpu = process.cpuUsage();
    const { samples } = await scrape();
    const value = (name: string) => {
      const found = samples.filter((s) => s.name === name);
      expect(found, name).toHaveLength(1);
      return found[0]!.value;
    };
    // Since the process started (prom-client alone would count from the registry's creation).
    expect(value("process_cpu_seconds_total")).toBeGreaterThanOrEqual((cpu.user + cpu.system) / 1e6);
    expect(value("process_cpu_seconds_total")).toBeLessThan((cpu.user + cpu.system) / 1e6 + 1);
    expect(value("process_cpu_seconds_total")).toBeCloseTo(
      value("process_cpu_user_seconds_total") + value("process_cpu_system_seconds_total"),
      3,
    );
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(rss / 2);
    expect(value("process_resident_memory_bytes")).toBeLessThan(rss * 2);
    expect(Math.abs(value("process_start_time_seconds") - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(value("process_open_fds")).toBeGreaterThan(2);
    expect(value("process_max_fds")).toBeGreaterThanOrEqual(value("process_open_fds"));
    expect(value("nodejs_heap_size_used_bytes")).toBeGreaterThan(1_000_000);
    expect(value("nodejs_heap_size_used_bytes")).toBeLessThanOrEqual(value("nodejs_heap_size_total_bytes"));
  });

  it("observes every garbage collection, by kind", async () => {
    // An observer of our own sees every `gc` entry; /metrics must count as many (prom-client's own
    // observer would count one per callback, and V8 collects several times in one task here).
    const gcCount = async () => sum((await scrape()).samples, "nodejs_gc_duration_seconds_count");
    let seen = 0;
    let together = 0; // the most entries one callback got
    const observer = new PerformanceObserver((list) => {
      seen += list.getEntries().length;
      together = Math.max(together, list.getEntries().length);
    });
    observer.observe({ entryTypes: ["gc"] });
    try {
      const before = await gcCount();
      await waitFor(
        () => {
          churn(10); // in one task: the entries of its collections arrive together
          return seen >= 3 && together >= 2;
        },
        { timeoutMs: 10_000, message: "collections seen, several in one callback" },
      );
      let counted = 0;
      await waitFor(async () => (counted = (await gcCount()) - before) >= seen, {
        timeoutMs: 5_000,
        message: "every GC counted",
      });
      expect(counted).toBeGreaterThanOrEqual(seen);
    } finally {
      observer.disconnect();
    }
    const { samples } = await scrape();
    const kinds = samples.filter((s) => s.name === "nodejs_gc_duration_seconds_count" && s.value > 0).map((s) => s.labels.kind);
    expect(kinds.length).toBeGreaterThan(0);
    for (const kind of kinds) expect(["major", "minor", "incremental", "weakcb"]).toContain(kind);
    expect(sum(samples, "nodejs_gc_duration_seconds_sum")).toBeGreaterThan(0);
    expect(sum(samples, "nodejs_gc_duration_seconds_sum")).toBeLessThan(process.uptime());
  }, 20_000);

  it("sees the event loop blocked", async () => {
    // A block shows once the monitor's timer ticks after it. A scrape starts the samples over (and
    // Node's monitor then skips its next interval), so block in one round, scrape in the next.
    let round = 0;
    let max = 0;
    await waitFor(
      async () => {
        if (round++ % 2 === 0) {
          block(150);
          return false;
        }
        max = sum((await scrape()).samples, "nodejs_eventloop_lag_max_seconds");
        return max >= 0.15;
      },
      { timeoutMs: 10_000, message: "a 150 ms block in nodejs_eventloop_lag_max_seconds" },
    );
    expect(max).toBeLessThan(5);
  }, 20_000);

  it("observes query latency per route", async () => {
    for (let i = 0; i < 5; i++) expect((await get("/tables/revenue_by_store/rows/store-1", auth)).status).toBe(200);
    expect((await get("/tables", auth)).status).toBe(200);
    expect((await get("/tables/nope", auth)).status).toBe(404);
    const { samples } = await scrape();
    const count = (route: string) => sum(samples, "eddy_query_duration_seconds_count", (l) => l.route === route);
    expect(count("/tables/:name/rows/:key")).toBeGreaterThanOrEqual(5);
    expect(count("/tables")).toBeGreaterThanOrEqual(1);
    expect(count("/tables/:name")).toBeGreaterThanOrEqual(1);
    const inf = sum(
      samples,
      "eddy_query_duration_seconds_bucket",
      (l) => l.route === "/tables/:name/rows/:key" && l.le === "+Inf",
    );
    expect(inf).toBe(count("/tables/:name/rows/:key"));
    expect(sum(samples, "eddy_query_duration_seconds_sum", (l) => l.route === "/tables/:name/rows/:key")).toBeGreaterThan(0);
    // Operations endpoints are not queries.
    expect(
      samples.some((s) =>
        s.name.startsWith("eddy_query_duration_seconds") && ["/metrics", "/healthz", "/readyz"].includes(s.labels.route!)
      ),
    ).toBe(false);
  });

  it("reports lag per partition from the polled last sequence", async () => {
    await publishOrders(nc, { stream: "orders", seed: 12, count: 300 });
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "caught up again" });
    let samples: Sample[] = [];
    await waitFor(
      async () => {
        samples = (await scrape()).samples;
        const lags = samples.filter((s) => s.name === "eddy_lag_events");
        return sum(samples, "eddy_source_last_sequence", (l) => l.stream === "orders") === last && lags.length > 0 &&
          lags.every((s) => s.value === 0);
      },
      { timeoutMs: 10_000, message: "lag 0 at the last sequence" },
    );
    expect(samples.filter((s) => s.name === "eddy_lag_events")).toHaveLength(worker.status().length);
  });

  it("is not ready once the worker stopped", async () => {
    await worker.stop();
    const ready = await get("/readyz");
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as any;
    expect(body.ready).toBe(false);
    expect(body.reasons.join(" ")).toMatch(/not running: .* is stopped/);
    expect((await get("/healthz")).status).toBe(200);
    const { samples } = await scrape();
    expect(sum(samples, "eddy_actor_state", (l) => l.state === "stopped")).toBe(worker.status().length);
  });
});

describe("eddy run --port", () => {
  const nats = useNatsServer();

  it("serves /metrics, /healthz and /readyz beside the worker, and stops on SIGTERM", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 3, count: 200 });
    const child = spawn(
      process.execPath,
      [
        resolve("bin/eddy.js"),
        "run",
        "examples/coffee-shop/pipeline.ts",
        "--export",
        "coffeeShop",
        "--nats",
        nats.url,
        "--port",
        "0",
        "--checkpoint-ms",
        "50",
      ],
      { env: { ...process.env, NATS_URL: "" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? -1)));
    try {
      let base = "";
      await waitFor(
        () => {
          base = /"event":"running".*"http":"(http:\/\/[^"]+)"/.exec(stderr)?.[1] ?? "";
          return base !== "";
        },
        { timeoutMs: 30_000, message: `eddy run listening\n${stderr}` },
      );
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 10_000, message: "ready" });
      let text = "";
      await waitFor(
        async () => {
          text = await (await fetch(`${base}/metrics`)).text();
          const events = [...text.matchAll(/^eddy_events_in_total\{[^}]*step="store-revenue"[^}]*\} (\d+)$/gm)].reduce(
            (n, m) => n + Number(m[1]),
            0,
          );
          return events === 200;
        },
        { timeoutMs: 20_000, message: "200 orders in eddy_events_in_total" },
      );
      const { families } = parseExposition(text);
      expect(families.get("eddy_actor_state")?.type).toBe("gauge");
      expect(families.get("eddy_checkpoint_duration_seconds")?.type).toBe("histogram");
      expect(families.get("process_cpu_seconds_total")?.samples[0]?.value).toBeGreaterThan(0);
      expect((await fetch(`${base}/tables/revenue_by_store`)).status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("serves no HTTP without --port", () => {
    expect(runCommand.flags.port?.default).toBeUndefined();
  });
});
