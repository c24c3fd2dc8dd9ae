/**
 * `eddy serve`: the query API (src/serve/api.ts) over replicas of every result table on the
 * server, until SIGINT or SIGTERM, and the groups of the pipelines' workers (`/groups`: members,
 * partition owners, moves in progress), from KV. Tables and groups created later are picked up
 * every `--refresh-ms`. With no pipeline in the process, `/` serves the overview page (the tables,
 * linking to their rows, and the workers and partitions of each group). Any number of these
 * processes can serve the same tables, each from its own replicas.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Effect } from "effect";
import { ConfigError } from "../core/errors.ts";
import { commandLogger, logFlags } from "../observe/logger.ts";
import type { Dashboard } from "../pipeline/pipeline.ts";
import type { Platform } from "../platform/platform.ts";
import type { Group } from "../cluster/group.ts";
import type { Worker } from "../runtime/worker.ts";
import { createQueryApi } from "../serve/api.ts";
import { Catalog } from "../serve/catalog.ts";
import { Groups } from "../serve/groups.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { execute } from "./execute.ts";
import { natsConnection, natsFlags, resolveUrl } from "./target.ts";

export const serveCommand: CommandSpec = {
  name: "serve",
  summary: "Serve the result tables over HTTP (read-only JSON and Server-Sent Events) from in-memory replicas.",
  positionals: [],
  flags: {
    ...natsFlags,
    port: { type: "number", help: "HTTP port (0: a free one)", default: 8080 },
    host: { type: "string", help: "address to listen on (0.0.0.0 for every interface)", default: "127.0.0.1" },
    token: { type: "string", help: "require Authorization: Bearer <token> (else $EDDY_API_TOKEN; none: no auth)" },
    cors: { type: "string", help: "allowed CORS origins, comma-separated, or *" },
    tables: { type: "string", help: "serve only these result tables, comma-separated (default: every table)" },
    "refresh-ms": { type: "number", help: "look for new tables and groups this often; 0 = never", default: 5000 },
    ...logFlags,
  },
  examples: [
    "eddy serve --port 8080",
    "EDDY_API_TOKEN=s3cret eddy serve --cors https://dash.example --nats nats://127.0.0.1:4222",
    "curl localhost:8080/tables/revenue_by_store/rows?limit=10",
  ],
};

export async function serve(platform: Platform, { flags }: Parsed): Promise<number> {
  const logger = commandLogger(platform, flags, { cmd: "serve" });
  const url = await resolveUrl(platform, flags.nats);
  const log = logger.sink("info");
  const token = (flags.token as string | undefined) || platform.env("EDDY_API_TOKEN") || undefined;
  const origins = typeof flags.cors === "string" ? flags.cors.split(",").map((o) => o.trim()).filter(Boolean) : undefined;
  const shutdown = platform.shutdownSignal();
  await execute(
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(platform, url, flags.creds);
        const { listener, catalog } = yield* queryApi(platform, nc, {
          port: flags.port as number,
          host: flags.host as string,
          refreshMs: flags["refresh-ms"] as number,
          ...(typeof flags.tables === "string" ? { tables: flags.tables.split(",").map((t) => t.trim()).filter(Boolean) } : {}),
          ...(token ? { token } : {}),
          ...(origins ? { origins } : {}),
          log,
        });
        logger.info("serving", {
          url: listener.url,
          tables: catalog.names(),
          auth: token ? "bearer" : "none",
          cors: origins ?? null,
        });
        const signal = yield* Effect.promise(() => shutdown);
        logger.info("stopping", { signal });
      }),
    ),
  );
  logger.info("stopped", {});
  return 0;
}

export interface QueryApiResourceOptions {
  readonly port: number;
  readonly host: string;
  readonly refreshMs: number;
  readonly token?: string;
  readonly origins?: readonly string[];
  /** Serve only these tables (default: all). */
  readonly tables?: readonly string[];
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /** The worker in this process (`eddy run --port`, `eddy dev`): its actors in /metrics and /readyz. */
  readonly worker?: Worker;
  /** Its group (`eddy run --port`): /group is this group, with this member as `self`. */
  readonly group?: Group;
  /** The page at `/`: the running pipeline's (`Pipeline.dashboard`); default the overview. */
  readonly dashboard?: Dashboard;
}

/**
 * The query API as a scoped resource: table replicas plus an HTTP listener (`eddy serve`,
 * `eddy dev`, `eddy run --port`), with /metrics, /healthz and /readyz.
 */
export function queryApi(platform: Platform, nc: NatsConnection, options: QueryApiResourceOptions) {
  return Effect.gen(function* () {
    const catalog = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          Catalog.open(nc, {
            refreshMs: options.refreshMs,
            ...(options.tables ? { tables: options.tables } : {}),
            ...(options.log ? { log: options.log } : {}),
          }),
        catch: (e) => e,
      }),
      (c) => Effect.promise(() => c.close()),
    );
    // Every pipeline's group on the server, from KV: who works, who holds each partition, what moves.
    const groups = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Groups.open(nc, { refreshMs: options.refreshMs, ...(options.log ? { log: options.log } : {}) }),
        catch: (e) => e,
      }),
      (g) => Effect.promise(() => g.close()),
    );
    const api = createQueryApi(catalog, {
      groups,
      ...(options.token ? { token: options.token } : {}),
      ...(options.origins ? { cors: options.origins.includes("*") ? "*" : [...options.origins] } : {}),
      ...(options.worker ? { worker: options.worker } : {}),
      ...(options.group ? { member: { id: options.group.id, pipeline: options.group.worker.pipeline.id } } : {}),
      ...(options.dashboard ? { dashboard: options.dashboard } : {}),
      runtimeProbes: platform.runtimeProbes,
    });
    const listener = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => platform.listen(api.fetch, { port: options.port, hostname: options.host, shortcut: api.shortcut }),
        catch: (e) =>
          new ConfigError({
            message: `cannot listen on ${options.host}:${options.port}: ${(e as Error).message ?? e}`,
            hint: "pick another --port (0 for a free one), or check --host",
          }),
      }),
      (l) =>
        Effect.promise(() => {
          api.close(); // end the SSE streams first: open streams would hold the listener open
          return l.close();
        }),
    );
    return { listener, catalog };
  });
}
