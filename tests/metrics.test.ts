/**
 * Operations endpoints over a live pipeline: a real nats-server, the coffee-shop pipeline run by a
 * Worker in this process, and the query API's fetch handler called directly. /metrics agrees with
 * worker.status(), /healthz answers, /readyz turns 503 once the worker stops, query latency is
 * observed, and the lag comes from the background poll of the source stream.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { runCommand } from "../src/cli/run.ts";
import { Worker } from "../src/runtime/worker.ts";
import { createQueryApi, type QueryApi } from "../src/serve/api.ts";
import { Catalog } from "../src/serve/catalog.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parse the text exposition: samples, and the TYPE of each family. */
function parse(text: string): { samples: Sample[]; types: Map<string, string>; helps: Set<string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const help = /^# HELP (\S+) /.exec(line);
    if (help) helps.add(help[1]!);
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types, helps };
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
    api = createQueryApi(catalog, { worker, lagRefreshMs: 100, token: "s3cret" });
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
    const api2 = createQueryApi(catalog, { worker, lagRefreshMs: 0 }); // no token, no lag poller
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
          ["eddy_checkpoint_duration_ms", "gauge"],
          ["eddy_checkpoint_bytes", "gauge"],
          ["eddy_state_keys", "gauge"],
          ["eddy_committed_position", "gauge"],
          ["eddy_actor_state", "gauge"],
          ["eddy_table_rows", "gauge"],
          ["eddy_query_duration_seconds", "histogram"],
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
      expect(sum(samples, "eddy_checkpoint_bytes")).toBeGreaterThan(0);
      expect(sum(samples, "eddy_table_rows", (l) => l.table === "revenue_by_store")).toBe(5);
      // No poller: no lag rather than a stale or blocking one.
      expect(samples.some((s) => s.name === "eddy_lag_events")).toBe(false);
    } finally {
      api2.close();
    }
  });

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
      expect(text).toMatch(/^# TYPE eddy_actor_state gauge$/m);
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
