/**
 * `eddy dev`: the coffee-shop demo in one command. Without NATS_URL it starts a local
 * nats-server (JetStream on, a free port, its store under .eddy/ in this directory), opens the
 * live coffee shop (orders at a steady rate, and each order's lifecycle as it falls due), runs the
 * coffee-shop pipeline with the order lifecycle, serves the query API with the pipeline's dashboard
 * at `/`, and logs where to look (src/observe/logger.ts: human on a terminal, JSON lines otherwise).
 * Ctrl-C or SIGTERM checkpoints, stops the server and exits 0.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Effect } from "effect";
import { coffeeShop } from "../../examples/coffee-shop/pipeline.ts";
import { openShop } from "../../examples/coffee-shop/live-shop.ts";
import { commandLogger, logFlags, type Logger } from "../observe/logger.ts";
import type { Platform } from "../platform/platform.ts";
import { systemClock } from "../core/clock.ts";
import { Worker } from "../runtime/worker.ts";
import { readTable } from "../state/table.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { followCatchUp } from "./catch-up.ts";
import { execute } from "./execute.ts";
import { workerFlags, workerOptions } from "./run.ts";
import { queryApi } from "./serve.ts";
import { devUrlFile, natsConnection, natsFlags, redactUrl } from "./target.ts";

export const devCommand: CommandSpec = {
  name: "dev",
  summary:
    "Run the coffee-shop demo: a local nats-server (unless NATS_URL or --nats is set), an order generator and the pipeline.",
  positionals: [],
  flags: {
    ...natsFlags,
    rate: { type: "number", help: "orders per second to generate; 0 = none", default: 20 },
    count: { type: "number", help: "stop generating after this many orders; 0 = never", default: 0 },
    seed: { type: "number", help: "generator seed", default: 1 },
    partitions: { type: "number", help: "partitions per keyed step", default: 4 },
    "data-dir": { type: "string", help: "where the local nats-server keeps its store", default: ".eddy" },
    ...workerFlags,
    "summary-ms": { type: "number", help: "print a summary this often; 0 = never", default: 5000 },
    port: { type: "number", help: "port of the query API (0: a free one)", default: 8080 },
    ...logFlags,
  },
  examples: ["eddy dev", "eddy dev --rate 500", "NATS_URL=nats://user:pass@host:4222 eddy dev"],
};

export async function dev(platform: Platform, { flags }: Parsed): Promise<number> {
  const logger = commandLogger(platform, flags, { cmd: "dev" });
  const given = (flags.nats as string | undefined) || platform.env("NATS_URL");
  const dataDir = `${platform.cwd()}/${flags["data-dir"] as string}`;
  const shutdown = platform.shutdownSignal();
  return execute(
    Effect.scoped(
      Effect.gen(function* () {
        let url = given;
        if (!url) {
          const server = yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: () => platform.startNatsServer({ storeDir: `${dataDir}/nats`, logFile: `${dataDir}/nats-server.log` }),
              catch: (e) => e,
            }),
            (s) => Effect.promise(() => s.stop()),
          );
          url = server.url;
          yield* Effect.promise(() => platform.writeFile(`${platform.cwd()}/${devUrlFile}`, `${url}\n`));
          logger.info("nats-started", { url, store: `${dataDir}/nats`, log: `${dataDir}/nats-server.log` });
        } else {
          logger.info("nats", { url: redactUrl(url) });
        }
        const nc = yield* natsConnection(platform, url, flags.creds);
        const shop = startShop(nc, flags, logger);
        yield* Effect.addFinalizer(() => Effect.promise(() => shop.stop()));
        yield* Effect.tryPromise({ try: () => shop.ready, catch: (e) => e });
        const pipeline = coffeeShop({ partitions: flags.partitions as number, orderStatus: "order_status" });
        const worker = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => Worker.start(nc, pipeline, workerOptions(flags, logger.sink("debug"))),
            catch: (e) => e,
          }),
          (w) => Effect.promise(() => w.stop()),
        );
        const { listener } = yield* queryApi(platform, nc, {
          port: flags.port as number,
          host: "127.0.0.1",
          refreshMs: 2000,
          worker,
          ...(pipeline.dashboard ? { dashboard: pipeline.dashboard } : {}),
        });
        logger.info("running", {
          pipeline: pipeline.id,
          actors: worker.status().length,
          tables: "revenue_by_store,revenue_by_item,revenue_by_category,revenue_per_store_minute,top_items_per_store," +
            "late_orders,open_orders,open_orders_by_store,serve_time_by_store",
        });
        logger.info("dashboard", { url: `${listener.url}/` });
        logger.info("query-api", { tables: `${listener.url}/tables`, example: `${listener.url}/tables/revenue_by_store/rows` });
        logger.info("metrics", {
          url: `${listener.url}/metrics`,
          health: `${listener.url}/healthz`,
          ready: `${listener.url}/readyz`,
        });
        logger.info("try", { command: "./bin/eddy.js query revenue_by_store", follow: "./bin/eddy.js tail revenue_by_store" });
        logger.info("ready", { stop: "Ctrl-C" });
        const catchUp = yield* Effect.promise(() =>
          followCatchUp(nc, worker, { terminal: platform.errInteractive, write: platform.err })
        );
        const summaryMs = flags["summary-ms"] as number;
        const timer = summaryMs > 0 ? setSummary(nc, worker, summaryMs, logger) : undefined;
        const signal = yield* Effect.promise(() => shutdown);
        catchUp.stop();
        if (timer !== undefined) systemClock.clearTimeout(timer.handle);
        logger.info("stopping", { signal, doing: "final checkpoint" });
      }),
    ),
  ).then(() => {
    logger.info("stopped", {});
    return 0;
  });
}

/** The live coffee shop (examples/coffee-shop/live-shop.ts): orders and their lifecycles, paced by the clock. */
function startShop(nc: NatsConnection, flags: Parsed["flags"], logger: Logger) {
  const rate = flags.rate as number;
  const count = flags.count as number;
  const seed = flags.seed as number;
  if (rate > 0) {
    logger.info("generating", { ordersPerSec: rate, streams: "orders,order_status", seed, ...(count ? { count } : {}) });
  }
  return openShop(nc, { rate, count, seed, onError: (error) => logger.warn("generator", { error: String(error) }) });
}

function setSummary(nc: NatsConnection, worker: Worker, everyMs: number, logger: Logger) {
  const state = { handle: undefined as unknown };
  const tick = async () => {
    const rows = await readTable<{ key: string; orders: number; revenue: number }>(nc, "revenue_by_store").catch(() => []);
    rows.sort((a, b) => a.key.localeCompare(b.key));
    const processed = worker.committedPosition("orders");
    const dead = worker.sourceDeadLetters;
    const stores = rows.map((r) => `${r.key} $${r.revenue.toFixed(2)} (${r.orders})`).join(" | ");
    logger.info("summary", { processed, deadLetters: dead, stores });
    state.handle = systemClock.setTimeout(tick, everyMs);
  };
  state.handle = systemClock.setTimeout(tick, everyMs);
  return state;
}
