/**
 * `eddy dev`: the coffee-shop demo in one command. Without NATS_URL it starts a local
 * nats-server (JetStream on, a free port, its store under .eddy/ in this directory), creates
 * the orders stream, publishes generated orders at a steady rate, runs the coffee-shop pipeline
 * and logs where to look (src/observe/logger.ts: human on a terminal, JSON lines otherwise).
 * Ctrl-C or SIGTERM checkpoints, stops the server and exits 0.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Effect } from "effect";
import { coffeeShop } from "../../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../../examples/coffee-shop/orders.ts";
import { commandLogger, logFlags, type Logger } from "../observe/logger.ts";
import type { Platform } from "../platform/platform.ts";
import { systemClock } from "../runtime/clock.ts";
import { Worker } from "../runtime/worker.ts";
import { readTable } from "../state/table.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { followCatchUp } from "./catch-up.ts";
import { execute } from "./execute.ts";
import { workerOptions } from "./run.ts";
import { queryApi } from "./serve.ts";
import { devUrlFile, natsConnection, natsFlags } from "./target.ts";

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
    "checkpoint-ms": { type: "number", help: "checkpoint interval in ms", default: 1000 },
    "checkpoint-events": { type: "number", help: "checkpoint after this many events per actor", default: 100_000 },
    "table-flush-ms": {
      type: "number",
      help: "write changed result-table rows this often between checkpoints; 0 = only at checkpoints",
      default: 100,
    },
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
          logger.info("nats", { url: url.replace(/\/\/[^@/]*@/, "//***@") });
        }
        const nc = yield* natsConnection(platform, url, flags.creds);
        const generator = startGenerator(nc, flags, logger);
        yield* Effect.addFinalizer(() => Effect.promise(() => generator.stop()));
        yield* Effect.promise(() => generator.ready);
        const pipeline = coffeeShop({ partitions: flags.partitions as number });
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
        });
        logger.info("running", {
          pipeline: pipeline.id,
          actors: worker.status().length,
          tables: "revenue_by_store,revenue_by_item,revenue_by_category,revenue_per_store_minute,top_items_per_store",
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

/** Publish orders in one-second rounds until stopped (or `--count` is reached). */
function startGenerator(nc: NatsConnection, flags: Parsed["flags"], logger: Logger) {
  const rate = flags.rate as number;
  const count = flags.count as number;
  const seed = flags.seed as number;
  let stopped = false;
  let wake: (() => void) | undefined;
  let published = 0;
  let ready!: () => void;
  const readyPromise = new Promise<void>((r) => (ready = r));
  const loop = (async () => {
    // The stream must exist before the pipeline starts: publish nothing, create it.
    await publishOrders(nc, { stream: "orders", seed, count: 0 });
    ready();
    if (rate <= 0) return;
    logger.info("generating", { ordersPerSec: rate, stream: "orders", seed, ...(count ? { count } : {}) });
    for (let round = 0; !stopped && (count === 0 || published < count); round++) {
      const started = systemClock.now();
      const n = count === 0 ? rate : Math.min(rate, count - published);
      await publishOrders(nc, {
        stream: "orders",
        seed: seed * 1_000_003 + started,
        count: n,
        startTime: started,
        spacingMs: 1000 / rate,
      });
      published += n;
      const wait = started + 1000 - systemClock.now();
      if (wait > 0 && !stopped) await new Promise<void>((r) => ((wake = r), systemClock.setTimeout(r, wait)));
    }
  })();
  return {
    ready: readyPromise,
    async stop() {
      stopped = true;
      wake?.();
      await loop.catch(() => undefined);
    },
  };
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
