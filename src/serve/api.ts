/**
 * The query API: a read-only Hono app over the replicas of a Catalog, coded against Web-standard
 * Request/Response only, so the same app runs on Node and Deno; listening is the platform's job
 * (Platform.listen, which may answer plain row reads through `shortcut`). It serves the tables
 * (`/tables`, rows by key, key ranges, TopN rows, Server-Sent Events of changes), the worker in
 * this process (`/actors`), the pipelines' groups (`/groups`, `/group`: workers, partition owners,
 * moves), a console page at `/`, and `/metrics`, `/healthz`, `/readyz`. Errors
 * are `{ error: { code, message } }`; with a token, every request but the probes needs it.
 * See docs/ARCHITECTURE.md, "The query API", for every route, its answer and its errors.
 *
 * @example
 * const catalog = await Catalog.open(nc);
 * const api = createQueryApi(catalog, { token: "s3cret", cors: ["https://dash.example"] });
 * const listener = await platform.listen(api.fetch, { port: 8080, shortcut: api.shortcut });
 * // GET http://127.0.0.1:8080/tables/revenue_by_store/rows/store-1
 */
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import { streamSSE } from "hono/streaming";
import { matchedRoutes } from "hono/route";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { RuntimeProbes, Shortcut } from "../platform/platform.ts";
import type { Dashboard } from "../pipeline/pipeline.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { actorDetail, actorsView, type ServedWorker } from "./actors.ts";
import type { Catalog } from "./catalog.ts";
import type { LoggedChange } from "./change-log.ts";
import type { GroupAnswer } from "./group-watch.ts";
import type { Groups } from "./groups.ts";
import { html as overviewHtml } from "./overview.generated.ts";
import { ApiMetrics, prometheusContentType } from "./metrics.ts";
import type { TableReplica } from "./replica.ts";
import { rankedRow, rankOrder } from "./top-n.ts";

export interface QueryApiOptions {
  /** Require `Authorization: Bearer <token>` on every request. */
  readonly token?: string;
  /** Origins allowed by CORS ("*" for any); no CORS headers when absent. */
  readonly cors?: string | readonly string[];
  readonly clock?: Clock;
  /** SSE keep-alive comment interval (default 15000 ms). */
  readonly keepAliveMs?: number;
  /** Changes buffered per SSE client before it is cut off (default 10000). */
  readonly maxQueuedChanges?: number;
  /** The worker in this process, if any: its actors in /metrics, /readyz, /actors and the pages at `/`. */
  readonly worker?: ServedWorker;
  /**
   * The pipelines' groups this service follows from KV (src/serve/groups.ts): their members, who
   * holds and who should hold each partition, and the moves in progress, at /groups and /group.
   */
  readonly groups?: Pick<Groups, "get" | "pipelines">;
  /** The group member in this process (`eddy run --port`): /group is its group, with `self`. */
  readonly member?: { readonly id: string; readonly pipeline: string };
  /** How often to poll source streams' last sequence for the lag metric (default 5000; 0: never). */
  readonly lagRefreshMs?: number;
  /** The page served at `GET /` (the pipeline's: `Pipeline.dashboard`); default the overview. */
  readonly dashboard?: Dashboard;
  /** The platform's runtime probes for /metrics' process metrics (Platform.runtimeProbes). */
  readonly runtimeProbes?: RuntimeProbes;
}

/** The page `GET /` serves when no dashboard is given: the tables, and the worker's actors. */
export const overviewPage: Dashboard = { html: overviewHtml };

export interface QueryApi {
  readonly app: Hono;
  readonly fetch: (request: Request) => Response | Promise<Response>;
  /** The row reads the app answers, answered without it (Platform.listen's `shortcut`). */
  readonly shortcut: Shortcut;
  /** Query latency and the lag poller behind /metrics. */
  readonly metrics: ApiMetrics;
  /** End every open SSE stream and stop the lag poller. */
  close(): void;
}

export const defaultLimit = 100;
export const maxLimit = 1000;
/** Keys of keyed state shown by `GET /actors/:step/:partition` (`?sample=`): default and most. */
export const defaultSample = 20;
export const maxSample = 200;

type ErrorCode =
  | "bad_parameter"
  | "unauthorized"
  | "table_not_found"
  | "row_not_found"
  | "actor_not_found"
  | "group_not_found"
  | "not_top_n"
  | "not_found"
  | "method_not_allowed"
  | "internal";

function fail(c: Context, status: ContentfulStatusCode, code: ErrorCode, message: string): Response {
  return c.json({ error: { code, message } }, status);
}

export function createQueryApi(catalog: Pick<Catalog, "get" | "names">, options: QueryApiOptions = {}): QueryApi {
  const app = new Hono();
  const clock = options.clock ?? systemClock;
  const closers = new Set<() => void>();
  const metrics = new ApiMetrics({
    ...(options.worker ? { worker: options.worker } : {}),
    ...(options.lagRefreshMs === undefined ? {} : { lagRefreshMs: options.lagRefreshMs }),
    ...(options.runtimeProbes ? { runtimeProbes: options.runtimeProbes } : {}),
    clock,
  });
  const operational = new Set(["/metrics", "/healthz", "/readyz", "/"]);

  // Query latency: every request but the operations endpoints, labelled by route pattern.
  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const routes = matchedRoutes(c).filter((r) => r.method !== "ALL");
    const route = routes.length ? routes[routes.length - 1]!.path : "unmatched";
    if (!operational.has(route)) metrics.queryDuration.observe({ route }, (performance.now() - started) / 1000);
  });

  if (options.cors !== undefined) {
    const origin = typeof options.cors === "string" ? options.cors : [...options.cors];
    app.use(
      "*",
      cors({ origin, allowMethods: ["GET", "HEAD", "OPTIONS"], allowHeaders: ["Authorization", "Last-Event-ID"], maxAge: 600 }),
    );
  }
  app.use("*", async (c, next) => {
    if (!["GET", "HEAD", "OPTIONS"].includes(c.req.method)) {
      c.header("Allow", "GET, HEAD, OPTIONS");
      return fail(c, 405, "method_not_allowed", `the query API is read-only; ${c.req.method} is not allowed`);
    }
    await next();
  });
  if (options.token !== undefined) {
    const token = options.token;
    app.use("*", async (c, next) => {
      const path = new URL(c.req.url).pathname;
      if (path === "/healthz" || path === "/readyz") return next();
      const header = c.req.header("Authorization");
      const given = header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : c.req.query("access_token");
      if (given === undefined || !sameSecret(given, token)) {
        c.header("WWW-Authenticate", 'Bearer realm="eddy"');
        return fail(c, 401, "unauthorized", "a bearer token is required: send Authorization: Bearer <token>");
      }
      await next();
    });
  }

  const table = (c: Context): TableReplica | Response => {
    const name = c.req.param("name")!;
    return catalog.get(name) ?? fail(c, 404, "table_not_found", `there is no result table "${name}"`);
  };
  const lastSequence = (stream: string) => metrics.lastSequence(stream);
  const servedWorker = (c: Context): ServedWorker | Response =>
    options.worker ??
      fail(c, 404, "not_found", "this service runs no worker: /actors is served beside one (`eddy run --port`, `eddy dev`)");
  const describe = (replica: TableReplica) => ({
    name: replica.name,
    step: replica.meta?.step ?? null,
    partitions: replica.meta?.partitions ?? null,
    rows: replica.size,
    reflects: replica.reflects(),
  });

  app.get("/tables", (c) => {
    const bad = unknownParams(c, []);
    if (bad) return bad;
    const tables = catalog.names().flatMap((name) => {
      const replica = catalog.get(name);
      return replica ? [describe(replica)] : [];
    });
    return c.json({ tables });
  });

  app.get("/tables/:name", (c) => {
    const replica = table(c);
    if (replica instanceof Response) return replica;
    return unknownParams(c, []) ?? c.json(describe(replica));
  });

  app.get(rowRoute, (c) => {
    const replica = table(c);
    if (replica instanceof Response) return replica;
    const bad = unknownParams(c, []);
    if (bad) return bad;
    const key = c.req.param("key");
    const answer = rowAnswer(replica, key);
    if (answer === undefined) return fail(c, 404, "row_not_found", `table "${replica.name}" has no row with key "${key}"`);
    c.header("Content-Type", "application/json");
    return c.body(answer);
  });

  app.get("/tables/:name/rows/:key/top", (c) => {
    const replica = table(c);
    if (replica instanceof Response) return replica;
    const bad = unknownParams(c, ["column", "limit"]);
    if (bad) return bad;
    const key = c.req.param("key");
    const { column, limit: limitText } = c.req.query();
    const limit = parseLimit(limitText);
    if (limit instanceof Error) return fail(c, 400, "bad_parameter", limit.message);
    const found = rankedRow(replica, key);
    if (!found) {
      const windows = replica.meta?.windowed ? ` (nor a window of it, "${key}|<windowStart>")` : "";
      return fail(c, 404, "row_not_found", `table "${replica.name}" has no row with key "${key}"${windows}`);
    }
    const ranked = rankOrder(found.row, column, limit);
    if ("error" in ranked) {
      return fail(c, 400, column === undefined ? "not_top_n" : "bad_parameter", ranked.error);
    }
    const row = found.row as { windowStart?: unknown; windowEnd?: unknown };
    const window = typeof row.windowStart === "number" ? { start: row.windowStart, end: row.windowEnd ?? null } : null;
    // A window's row lives where its key does (src/state/table.ts).
    const placedBy = replica.meta?.windowed && window ? found.rowKey.slice(0, found.rowKey.lastIndexOf("|")) : found.rowKey;
    const partition = replica.partitionOf(placedBy);
    return c.json({
      key,
      rowKey: found.rowKey,
      window,
      column: ranked.column,
      entries: ranked.entries,
      reflects: partition === undefined ? replica.reflects() : replica.reflectsPartition(partition),
    });
  });

  app.get("/tables/:name/rows", (c) => {
    const replica = table(c);
    if (replica instanceof Response) return replica;
    const bad = unknownParams(c, ["from", "to", "limit", "cursor"]);
    if (bad) return bad;
    const { from, to, limit: limitText, cursor } = c.req.query();
    const parsed = parseLimit(limitText);
    if (parsed instanceof Error) return fail(c, 400, "bad_parameter", parsed.message);
    const limit = parsed ?? defaultLimit;
    let after: string | undefined;
    if (cursor !== undefined) {
      after = decodeCursor(cursor);
      if (after === undefined) {
        return fail(c, 400, "bad_parameter", "cursor is not one this API returned; pass `next` from the previous page as is");
      }
    }
    if (from !== undefined && to !== undefined && from > to) {
      return fail(c, 400, "bad_parameter", `from ("${from}") must not come after to ("${to}")`);
    }
    const page = replica.range({
      limit,
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(after === undefined ? {} : { after }),
    });
    return c.json({
      rows: page.rows,
      next: page.next === undefined ? null : encodeCursor(page.next),
      reflects: replica.reflects(),
    });
  });

  app.get("/tables/:name/changes", (c) => {
    const replica = table(c);
    if (replica instanceof Response) return replica;
    const bad = unknownParams(c, ["key", "lastEventId"]);
    if (bad) return bad;
    const key = c.req.query("key");
    // EventSource sends the header when it reconnects; `?lastEventId=` is for a client that
    // opens a new stream itself.
    const lastEventId = c.req.header("Last-Event-ID") ?? c.req.query("lastEventId");
    const keepAliveMs = options.keepAliveMs ?? 15_000;
    const maxQueued = options.maxQueuedChanges ?? 10_000;
    const log = replica.changes;
    const wanted = (change: LoggedChange) => key === undefined || String(change.change.key) === key;
    return streamSSE(c, async (stream) => {
      const queue: LoggedChange[] = [];
      let overflow = false;
      let ended = false;
      let wake: (() => void) | undefined;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const end = () => {
        ended = true;
        notify();
      };
      // Subscribing and reading the log's position happen in one turn: no change falls between.
      // A change is filtered by its key and parsed only when this client is sent it.
      const unsubscribe = replica.subscribe((first, count) => {
        for (let seq = first; seq < first + count; seq++) {
          if (key === undefined || String(log.keyOf(seq)) === key) queue.push({ seq, change: log.change(seq) });
        }
        if (queue.length > maxQueued) overflow = true;
        if (queue.length > 0) notify();
      });
      const position = log.last;
      const missed = lastEventId === undefined ? undefined : log.resume(lastEventId);
      closers.add(end);
      stream.onAbort(end);
      void replica.ended.then(end);
      const send = (logged: LoggedChange) =>
        stream.writeSSE({ event: "change", id: log.eventId(logged.seq), data: JSON.stringify(logged.change) });
      try {
        if (lastEventId === undefined) {
          const ready = key === undefined
            ? { reflects: replica.reflects() }
            : { key, row: replica.get(key) ?? null, reflects: replica.reflects() };
          await stream.writeSSE({ event: "ready", id: log.eventId(position), data: JSON.stringify(ready) });
        } else if (missed) {
          const sent = missed.filter(wanted);
          await stream.writeSSE({ event: "resumed", data: JSON.stringify({ after: lastEventId, missed: sent.length }) });
          for (const logged of sent) await send(logged);
        } else {
          const reason = `Last-Event-ID "${lastEventId}" cannot be resumed from (the service restarted, or more than ` +
            `${log.capacity} changes happened since): this is the ${key === undefined ? "table" : "row"} as of now`;
          const snapshot = key === undefined
            ? { reason, rows: replica.range({ limit: Math.max(1, replica.size) }).rows, reflects: replica.reflects() }
            : { reason, key, row: replica.get(key) ?? null, reflects: replica.reflects() };
          await stream.writeSSE({ event: "snapshot", id: log.eventId(position), data: JSON.stringify(snapshot) });
        }
        while (!ended) {
          if (overflow) {
            await stream.writeSSE({
              event: "overflow",
              data: JSON.stringify({
                message: "changes arrived faster than this client read them; reconnect with Last-Event-ID to resume",
              }),
            });
            break;
          }
          if (queue.length === 0) {
            let timer: unknown;
            const keepAlive = await new Promise<boolean>((resolve) => {
              wake = () => resolve(false);
              timer = clock.setTimeout(() => resolve(true), keepAliveMs);
            });
            clock.clearTimeout(timer);
            wake = undefined;
            if (keepAlive && !ended) await stream.write(": keep-alive\n\n");
            continue;
          }
          for (const logged of queue.splice(0)) await send(logged);
        }
      } finally {
        unsubscribe();
        closers.delete(end);
      }
    });
  });

  const groupAnswer = (pipeline: string): GroupAnswer | undefined =>
    options.groups?.get(pipeline)?.answer(options.member?.pipeline === pipeline ? options.member.id : null);

  app.get("/groups", (c) => {
    const bad = unknownParams(c, []);
    if (bad) return bad;
    const groups = (options.groups?.pipelines() ?? []).flatMap((p) => groupAnswer(p) ?? []);
    return c.json({ at: clock.now(), groups });
  });

  app.get("/groups/:pipeline", (c) => {
    const bad = unknownParams(c, []);
    if (bad) return bad;
    const pipeline = c.req.param("pipeline");
    const answer = groupAnswer(pipeline);
    return answer ? c.json(answer) : fail(c, 404, "group_not_found", `pipeline "${pipeline}" has no group on this server`);
  });

  app.get("/group", (c) => {
    const bad = unknownParams(c, []);
    if (bad) return bad;
    const pipelines = options.member ? [options.member.pipeline] : options.groups?.pipelines() ?? [];
    const answer = pipelines.length === 1 ? groupAnswer(pipelines[0]!) : undefined;
    if (answer) return c.json(answer);
    const why = pipelines.length > 1
      ? `this server has the groups of ${pipelines.length} pipelines (${pipelines.join(", ")}): ask /groups/:pipeline`
      : options.member
      ? `the group of pipeline "${options.member.pipeline}" is not followed yet`
      : "no pipeline on this server has a group (workers started with `eddy run` form one)";
    return fail(c, 404, pipelines.length > 1 ? "not_found" : "group_not_found", why);
  });

  app.get("/actors", (c) => {
    const worker = servedWorker(c);
    if (worker instanceof Response) return worker;
    return unknownParams(c, []) ?? c.json(actorsView(worker, lastSequence, clock.now()));
  });

  app.get("/actors/:step/:partition", (c) => {
    const worker = servedWorker(c);
    if (worker instanceof Response) return worker;
    const bad = unknownParams(c, ["sample"]);
    if (bad) return bad;
    const step = c.req.param("step");
    const partitionText = c.req.param("partition");
    if (!/^\d+$/.test(partitionText)) {
      return fail(c, 400, "bad_parameter", `partition must be a non-negative integer, got "${partitionText}"`);
    }
    const sampleText = c.req.query("sample");
    let sample = defaultSample;
    if (sampleText !== undefined) {
      sample = Number(sampleText);
      if (!/^\d+$/.test(sampleText) || sample > maxSample) {
        return fail(c, 400, "bad_parameter", `sample must be an integer from 0 to ${maxSample}, got "${sampleText}"`);
      }
    }
    const detail = actorDetail(worker, step, Number(partitionText), sample, lastSequence);
    if (!detail) {
      return fail(c, 404, "actor_not_found", `pipeline "${worker.pipeline.id}" has no operator actor ${step}/${partitionText}`);
    }
    return c.json(detail);
  });

  const page = (options.dashboard ?? overviewPage).html;
  app.get("/", (c) => {
    c.header("Cache-Control", "no-store");
    return c.html(page);
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", (c) => {
    const readiness = metrics.readiness(catalog);
    return c.json(readiness, readiness.ready ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    c.header("Content-Type", prometheusContentType);
    c.header("Cache-Control", "no-store");
    return c.body(await metrics.render(catalog));
  });

  app.notFound((c) => fail(c, 404, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}; see GET /tables`));
  app.onError((error, c) => fail(c, 500, "internal", String(error instanceof Error ? error.message : error)));

  // The row route's answers, without the app: only where the app's middleware adds nothing (no
  // CORS headers; with a token, a request that has it in its header) and the path is as routed
  // (nothing percent-decoded or normalised); else the app answers.
  const shortcut: Shortcut = (method, url, authorization) => {
    if (method !== "GET" || options.cors !== undefined) return undefined;
    if (options.token !== undefined) {
      if (!authorization?.startsWith("Bearer ") || !sameSecret(authorization.slice("Bearer ".length), options.token)) {
        return undefined;
      }
    }
    const match = plainRowPath.exec(url);
    const replica = match && catalog.get(match[1]!);
    if (!replica) return undefined;
    const started = performance.now();
    const answer = rowAnswer(replica, match[2]!);
    if (answer !== undefined) metrics.queryDuration.observe({ route: rowRoute }, (performance.now() - started) / 1000);
    return answer;
  };

  return {
    app,
    fetch: (request) => app.fetch(request),
    shortcut,
    metrics,
    close: () => {
      metrics.close();
      for (const end of [...closers]) end();
    },
  };
}

const rowRoute = "/tables/:name/rows/:key";
/** A row read's path with nothing in it the app would decode or normalise (dot segments, `%`, `\\`, ...). */
const plainRowPath = /^\/tables\/([\w~-][\w.~-]*)\/rows\/([\w~-][\w.~:@!$&'()*+,;=-]*)$/;

/**
 * The answer to a read of one row, `{ key, row, reflects }` as JSON text (the row as written: it
 * is not parsed and encoded again), or undefined when the table has no such row.
 */
function rowAnswer(replica: TableReplica, key: string): string | undefined {
  const row = replica.getJson(key);
  if (row === undefined) return undefined;
  const partition = replica.partitionOf(key);
  const reflects = partition === undefined ? replica.reflects() : replica.reflectsPartition(partition);
  return `{"key":${JSON.stringify(key)},"row":${row},"reflects":${JSON.stringify(reflects)}}`;
}

/** A 400 answer naming the first query parameter the route does not take, or undefined. */
function unknownParams(c: Context, known: readonly string[]): Response | undefined {
  for (const name of Object.keys(c.req.queries())) {
    if (name === "access_token" || known.includes(name)) continue;
    const takes = known.length ? `it takes ${known.join(", ")}` : "it takes none";
    return fail(c, 400, "bad_parameter", `unknown query parameter "${name}"; ${takes}`);
  }
  return undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A page cursor: the last key of the page, as base64url JSON (opaque to clients). */
export function encodeCursor(after: string): string {
  const bytes = encoder.encode(JSON.stringify({ after }));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string): string | undefined {
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const value = JSON.parse(decoder.decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0)))) as { after?: unknown };
    return typeof value.after === "string" ? value.after : undefined;
  } catch {
    return undefined;
  }
}

/** Compare secrets in time independent of where they differ. */
function sameSecret(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) diff |= (given.charCodeAt(i) || 0) ^ expected.charCodeAt(i);
  return diff === 0;
}

/** A `limit` query parameter: absent, an integer from 1 to maxLimit, or an Error saying what is wrong. */
function parseLimit(text: string | undefined): number | undefined | Error {
  if (text === undefined) return undefined;
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > maxLimit) {
    return new Error(`limit must be an integer from 1 to ${maxLimit}, got "${text}"`);
  }
  return limit;
}
