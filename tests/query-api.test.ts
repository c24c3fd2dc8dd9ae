/**
 * The query API over a live pipeline: a real nats-server, the coffee-shop pipeline run by a Worker,
 * replicas kept current by KV watches, served over HTTP on a free port. Answers equal what
 * readTable/readRow read from the buckets; Server-Sent Events deliver changes as new orders arrive.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { publishOrders } from "../examples/coffee-shop/orders.ts";
import { keyHash, partitionOf } from "../src/core/partition.ts";
import { listenNode } from "../src/platform/http-node.ts";
import type { HttpListener } from "../src/platform/platform.ts";
import { Worker } from "../src/runtime/worker.ts";
import { createQueryApi, overviewPage, type QueryApi } from "../src/serve/api.ts";
import { Catalog } from "../src/serve/catalog.ts";
import { ChangeLog } from "../src/serve/change-log.ts";
import { createTable, readRow, readTable } from "../src/state/table.ts";
import { decodePageFrom, encodePage, indexKey, pageKey } from "../src/state/table-page.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { tableBucket } from "../src/core/names.ts";

type StoreRow = { key: string; orders: number; revenue: number };
type TopRow = { key: string; top: { key: string; weight: number }[]; windowStart: number; windowEnd: number };

interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: any;
}

/** Read a Server-Sent Events response in the background; events accumulate in `events`. */
function readSse(response: Response): { events: SseEvent[]; done: Promise<void> } {
  const events: SseEvent[] = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const done = (async () => {
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length) events.push({ event, id, data: JSON.parse(data.join("\n")) });
        }
      }
    } catch {
      // aborted
    }
  })();
  return { events, done };
}

const byKey = (
  a: { key: unknown },
  b: { key: unknown },
) => (String(a.key) < String(b.key) ? -1 : String(a.key) > String(b.key) ? 1 : 0);

describe("query API over a live pipeline", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  let worker: Worker;
  let catalog: Catalog;
  let api: QueryApi;
  let listener: HttpListener;
  const get = (path: string, init?: RequestInit) => fetch(`${listener.url}${path}`, init);

  async function caughtUp(): Promise<void> {
    const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "pipeline caught up" });
  }

  beforeAll(async () => {
    nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 7, count: 3000 });
    worker = await Worker.start(nc, coffeeShop(), { checkpointMs: 50 });
    await caughtUp();
    catalog = await Catalog.open(nc, { refreshMs: 0 });
    api = createQueryApi(catalog, { cors: ["https://dash.example"] });
    listener = await listenNode(api.fetch, { port: 0 });
  }, 60_000);

  afterAll(async () => {
    api?.close();
    await listener?.close();
    await catalog?.close();
    await worker?.stop();
  }, 30_000);

  it("lists the tables with what they reflect", async () => {
    const response = await get("/tables");
    expect(response.status).toBe(200);
    const body = (await response.json()) as { tables: any[] };
    expect(body.tables.map((t) => t.name)).toEqual([
      "late_orders",
      "revenue_by_category",
      "revenue_by_item",
      "revenue_by_store",
      "revenue_per_store_minute",
      "top_items_per_store",
    ]);
    const store = body.tables.find((t) => t.name === "revenue_by_store");
    expect(store).toMatchObject({ step: "store-revenue", partitions: 4, rows: 5 });
    expect(store.reflects.checkpoint).toBeGreaterThan(0);
    expect(store.reflects.partitions).toHaveLength(4);
    expect(typeof store.reflects.lastUpdate).toBe("number");
    for (const p of store.reflects.partitions) {
      if (p.checkpoint !== null) expect(p.checkpoint).toBeGreaterThanOrEqual(store.reflects.checkpoint);
    }
  });

  it("reads one row, with the checkpoint of its partition", async () => {
    const response = await get("/tables/revenue_by_store/rows/store-1");
    expect(response.status).toBe(200);
    const body = (await response.json()) as any;
    expect(body.row).toEqual(await readRow(nc, "revenue_by_store", "store-1"));
    expect(body.reflects.partition).toBe(partitionOf(keyHash("store-1"), 4));
    expect(body.reflects.checkpoint).toBeGreaterThan(0);
    expect(body.reflects.at).toBeGreaterThan(0);
    expect(body.reflects.lastUpdate).toBeGreaterThan(0);
  });

  it("answers a row read through the shortcut (node:http, no Web objects) with the app's bytes", async () => {
    const secured = createQueryApi(catalog, { token: "s3cret" });
    const direct = await listenNode(secured.fetch, { port: 0, shortcut: secured.shortcut });
    try {
      const path = "/tables/revenue_by_store/rows/store-1";
      const auth = { Authorization: "Bearer s3cret" };
      const app = await secured.fetch(new Request(`http://eddy${path}`, { headers: auth }));
      const shortcut = secured.shortcut("GET", path, auth.Authorization);
      expect(shortcut).toBe(await app.text());
      const served = await fetch(`${direct.url}${path}`, { headers: auth });
      expect([served.status, served.headers.get("content-type"), await served.text()]).toEqual([
        200,
        app.headers.get("content-type"),
        shortcut,
      ]);
      // What the app would answer otherwise, or decode first, is left to it.
      expect(secured.shortcut("GET", path, undefined)).toBeUndefined();
      expect(secured.shortcut("GET", path, "Bearer wrong")).toBeUndefined();
      expect(secured.shortcut("HEAD", path, auth.Authorization)).toBeUndefined();
      for (const other of [`${path}?x=1`, "/tables/revenue_by_store/rows/store-404", "/tables/nope/rows/store-1"]) {
        expect(secured.shortcut("GET", other, auth.Authorization)).toBeUndefined();
      }
      for (const odd of ["/tables/revenue_by_store/rows/store%2D1", "/tables/revenue_by_store/rows/./store-1"]) {
        expect(secured.shortcut("GET", odd, auth.Authorization)).toBeUndefined();
      }
      expect((await fetch(`${direct.url}/tables/revenue_by_store/rows/store%2D1`, { headers: auth })).status).toBe(200);
      expect((await fetch(`${direct.url}${path}`)).status).toBe(401);
      expect(await secured.metrics.render(catalog)).toMatch(
        /eddy_query_duration_seconds_count\{route="\/tables\/:name\/rows\/:key"\} 5/,
      );
    } finally {
      secured.close();
      await direct.close();
    }
  });

  it("pages through a table in key order, and reads a range", async () => {
    const seen: { key: string; row: unknown }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `limit=3&cursor=${cursor}` : "limit=3";
      const body = (await (await get(`/tables/revenue_by_item/rows?${query}`)).json()) as any;
      expect(body.rows.length).toBeLessThanOrEqual(3);
      expect(body.reflects.checkpoint).toBeGreaterThan(0);
      seen.push(...body.rows);
      cursor = body.next;
      pages++;
    } while (cursor && pages < 100);
    const expected = (await readTable<{ key: string }>(nc, "revenue_by_item")).sort(byKey);
    expect(seen.map((r) => r.row)).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 3));

    const range = (await (await get("/tables/revenue_by_store/rows?from=store-2&to=store-4")).json()) as any;
    expect(range.rows.map((r: any) => r.key)).toEqual(["store-2", "store-3"]);
    expect(range.next).toBeNull();
  });

  it("answers unknown tables, keys and routes with 404 and the error shape", async () => {
    for (const path of ["/tables/nope", "/tables/nope/rows", "/tables/nope/rows/x", "/tables/nope/changes"]) {
      const response = await get(path);
      expect(response.status, path).toBe(404);
      expect(((await response.json()) as any).error).toMatchObject({
        code: "table_not_found",
        message: expect.stringContaining("nope"),
      });
    }
    const missing = await get("/tables/revenue_by_store/rows/store-99");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe("row_not_found");
    const actors = await get("/actors"); // this service runs no worker
    expect(actors.status).toBe(404);
    expect(((await actors.json()) as any).error).toMatchObject({ code: "not_found", message: expect.stringContaining("worker") });
    const route = await get("/nothing/here");
    expect(route.status).toBe(404);
    expect(((await route.json()) as any).error.code).toBe("not_found");
  });

  it("answers bad parameters with 400, and writes with 405", async () => {
    for (const query of ["limit=0", "limit=abc", "limit=1.5", "limit=5000", "cursor=garbage", "limt=3", "from=b&to=a"]) {
      const response = await get(`/tables/revenue_by_store/rows?${query}`);
      expect(response.status, query).toBe(400);
      const { error } = (await response.json()) as any;
      expect(error.code).toBe("bad_parameter");
      expect(error.message.length).toBeGreaterThan(10);
    }
    const bad = await get("/tables/revenue_by_store/changes?keys=x");
    expect(bad.status).toBe(400);
    const post = await get("/tables/revenue_by_store/rows", { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(((await post.json()) as any).error.code).toBe("method_not_allowed");
  });

  it("allows the configured CORS origin", async () => {
    const response = await get("/tables", { headers: { Origin: "https://dash.example" } });
    expect(response.headers.get("access-control-allow-origin")).toBe("https://dash.example");
    const other = await get("/tables", { headers: { Origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await get("/tables", {
      method: "OPTIONS",
      headers: {
        Origin: "https://dash.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
  });

  it("serves at / the dashboard it is given, else the overview page", async () => {
    const overview = await get("/");
    expect(overview.status).toBe(200);
    expect(overview.headers.get("content-type")).toContain("text/html");
    expect(overview.headers.get("cache-control")).toBe("no-store");
    const html = await overview.text();
    expect(html).toContain("<title>Eddy</title>");
    expect(html).toBe(overviewPage.html);
    const script = html.split('<script type="module">')[1]?.split("</script>")[0] ?? "";
    expect(script).toContain("/tables"); // the bundle inline, reading /tables

    const dashboard = { html: "<!doctype html><title>Mine</title><p>the pipeline's own page</p>" };
    const own = createQueryApi(catalog, { dashboard, token: "s3cret" });
    const ask = (path: string) => own.fetch(new Request(`http://eddy${path}`));
    expect((await ask("/")).status).toBe(401); // a page names tables and steps: the token guards it too
    const page = await ask("/?access_token=s3cret");
    expect(page.status).toBe(200);
    expect(await page.text()).toBe(dashboard.html);
    expect(coffeeShop().dashboard?.html).toContain("<title>Eddy · coffee shop</title>");
  });

  it("requires the bearer token when one is set", async () => {
    const secured = createQueryApi(catalog, { token: "s3cret", cors: "*" });
    const ask = (path: string, headers: Record<string, string> = {}) =>
      secured.fetch(new Request(`http://eddy${path}`, { headers }));
    const none = await ask("/tables");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await none.json()) as any).error.code).toBe("unauthorized");
    expect((await ask("/tables", { Authorization: "Bearer wrong" })).status).toBe(401);
    expect((await ask("/tables", { Authorization: "Bearer s3cret-and-more" })).status).toBe(401);
    expect((await ask("/tables", { Authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await ask("/tables/revenue_by_store/rows/store-1?access_token=s3cret")).status).toBe(200);
    // A CORS preflight carries no token; it is answered without one.
    const preflight = await secured.fetch(
      new Request("http://eddy/tables", {
        method: "OPTIONS",
        headers: { Origin: "https://x.example", "Access-Control-Request-Method": "GET" },
      }),
    );
    expect(preflight.status).toBe(204);
  });

  it(
    "streams row changes over SSE as new orders arrive, and the replica keeps equal to the bucket",
    { timeout: 60_000 },
    async () => {
      const aborts = new AbortController();
      const one = await get("/tables/revenue_by_store/changes?key=store-1", {
        signal: aborts.signal,
        headers: { Accept: "text/event-stream" },
      });
      expect(one.status).toBe(200);
      expect(one.headers.get("content-type")).toContain("text/event-stream");
      const all = await get("/tables/revenue_by_item/changes", { signal: aborts.signal });
      const keyed = readSse(one);
      const table = readSse(all);
      try {
        await waitFor(() => keyed.events.length > 0 && table.events.length > 0, { message: "ready events" });
        const ready = keyed.events[0]!;
        expect(ready.event).toBe("ready");
        const before = ready.data.row as StoreRow;
        expect(before).toEqual(await readRow(nc, "revenue_by_store", "store-1"));

        await publishOrders(nc, { stream: "orders", seed: 8, count: 500 });
        await caughtUp();
        const after = (await readRow<StoreRow>(nc, "revenue_by_store", "store-1"))!;
        expect(after.orders).toBeGreaterThan(before.orders);
        await waitFor(() => keyed.events.some((e) => e.event === "change" && e.data.row.orders === after.orders), {
          timeoutMs: 10_000,
          message: "an SSE change with store-1's new row",
        });
        const changes = keyed.events.filter((e) => e.event === "change");
        expect(changes.every((e) => e.data.key === "store-1" && e.data.op === "upsert")).toBe(true);
        expect(changes.at(-1)!.data.checkpoint).toBeGreaterThan(0);
        await waitFor(() => new Set(table.events.filter((e) => e.event === "change").map((e) => e.data.key)).size > 1, {
          message: "changes of several items",
        });

        for (const name of ["revenue_by_store", "revenue_by_item"]) {
          const expected = (await readTable<{ key: string }>(nc, name)).sort(byKey);
          await waitFor(() => JSON.stringify(catalog.get(name)!.rows()) === JSON.stringify(expected), {
            message: `replica of ${name} equals readTable`,
          });
        }
        const row = (await (await get("/tables/revenue_by_store/rows/store-1")).json()) as any;
        expect(row.row).toEqual(after);
      } finally {
        aborts.abort();
        await Promise.all([keyed.done, table.done]);
      }
    },
  );

  it("reads a TopN row in rank order: a window by its row key, or a store's latest window", async () => {
    const rows = await readTable<TopRow>(nc, "top_items_per_store");
    const mine = rows.filter((r) => r.key === "store-1").sort((a, b) => b.windowStart - a.windowStart);
    expect(mine.length).toBeGreaterThan(1);
    const latest = mine[0]!;
    const ranked = (entries: { key: string; weight: number }[]) =>
      entries.map((e, i) => ({ rank: i + 1, key: e.key, weight: e.weight }));

    const body = (await (await get("/tables/top_items_per_store/rows/store-1/top")).json()) as any;
    expect(body).toMatchObject({
      key: "store-1",
      rowKey: `store-1|${latest.windowStart}`,
      window: { start: latest.windowStart, end: latest.windowEnd },
      column: "top",
      entries: ranked(latest.top),
    });
    expect(body.entries.length).toBe(5);
    for (let i = 1; i < body.entries.length; i++) {
      const [a, b] = [body.entries[i - 1], body.entries[i]];
      expect(a.weight > b.weight || (a.weight === b.weight && a.key < b.key)).toBe(true);
    }
    expect(body.reflects.partition).toBe(partitionOf(keyHash("store-1"), 4));

    const older = mine[1]!;
    const path = `/tables/top_items_per_store/rows/${encodeURIComponent(`store-1|${older.windowStart}`)}/top?limit=2`;
    const one = (await (await get(path)).json()) as any;
    expect(one.rowKey).toBe(`store-1|${older.windowStart}`);
    expect(one.entries).toEqual(ranked(older.top).slice(0, 2));
    expect(((await (await get(`${path}&column=top`)).json()) as any).entries).toEqual(one.entries);

    const plain = await get("/tables/revenue_by_store/rows/store-1/top");
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as any).error.code).toBe("not_top_n");
    for (const query of ["column=revenue", "limit=0", "order=rank"]) {
      const bad = await get(`/tables/top_items_per_store/rows/store-1/top?${query}`);
      expect(bad.status, query).toBe(400);
      expect(((await bad.json()) as any).error.code).toBe("bad_parameter");
    }
    const missing = await get("/tables/top_items_per_store/rows/store-99/top");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe("row_not_found");
  });

  it("resumes a change stream from Last-Event-ID, or sends a snapshot when it cannot", { timeout: 60_000 }, async () => {
    const open = (query: string, headers: Record<string, string> = {}) => {
      const aborts = new AbortController();
      return get(`/tables/revenue_by_store/changes${query}`, { signal: aborts.signal, headers }).then((response) => {
        expect(response.status).toBe(200);
        return { ...readSse(response), close: () => aborts.abort() };
      });
    };
    // Connect, note the position, go away.
    const first = await open("");
    await waitFor(() => first.events.length > 0, { message: "ready" });
    const ready = first.events[0]!;
    expect(ready.event).toBe("ready");
    expect(ready.id).toMatch(/^\w+\.\d+$/);
    const keyed = await open("?key=store-2");
    await waitFor(() => keyed.events.length > 0, { message: "ready of store-2" });
    first.close();
    keyed.close();
    await Promise.all([first.done, keyed.done]);

    // Meanwhile every store sells more.
    await publishOrders(nc, { stream: "orders", seed: 9, count: 500 });
    await caughtUp();
    const now = (await readTable<StoreRow>(nc, "revenue_by_store")).sort(byKey);
    await waitFor(() => JSON.stringify(catalog.get("revenue_by_store")!.rows()) === JSON.stringify(now), {
      message: "the replica has the new rows",
    });

    // Back with Last-Event-ID: the changes missed, in order; applying them gives the table as it is.
    const resumed = await open("", { "Last-Event-ID": ready.id! });
    const resumedKey = await open(`?key=store-2&lastEventId=${keyed.events[0]!.id}`);
    try {
      await waitFor(() => resumed.events[0]?.event === "resumed" && resumed.events.length > resumed.events[0].data.missed, {
        message: "resumed and the missed changes",
      });
      const missed = resumed.events.slice(1, 1 + resumed.events[0]!.data.missed);
      expect(missed.length).toBeGreaterThanOrEqual(5);
      expect(missed.every((e) => e.event === "change" && e.id !== undefined)).toBe(true);
      const seqs = missed.map((e) => Number(e.id!.split(".")[1]));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(seqs[0]).toBeGreaterThan(Number(ready.id!.split(".")[1]));
      const applied = new Map<string, unknown>();
      for (const e of missed) applied.set(e.data.key, e.data.row);
      expect([...applied.keys()].sort()).toEqual(now.map((r) => r.key));
      for (const row of now) expect(applied.get(row.key)).toEqual(row);

      await waitFor(
        () => resumedKey.events[0]?.event === "resumed" && resumedKey.events.length > resumedKey.events[0].data.missed,
        {
          message: "resumed store-2",
        },
      );
      const store2 = resumedKey.events.slice(1);
      expect(store2.length).toBeGreaterThan(0);
      expect(store2.every((e) => e.data.key === "store-2")).toBe(true);
      expect(store2.at(-1)!.data.row).toEqual(now.find((r) => r.key === "store-2"));
    } finally {
      resumed.close();
      resumedKey.close();
      await Promise.all([resumed.done, resumedKey.done]);
    }

    // An id from another epoch (a restarted service) cannot be resumed: a full snapshot, with an id.
    for (const id of ["someoneelse.3", "garbage"]) {
      const stale = await open("", { "Last-Event-ID": id });
      try {
        await waitFor(() => stale.events.length > 0, { message: "the snapshot" });
        const [snapshot] = stale.events;
        expect(snapshot!.event).toBe("snapshot");
        expect(snapshot!.id).toMatch(/^\w+\.\d+$/);
        expect(snapshot!.data.reason).toContain(id);
        expect(snapshot!.data.rows.map((r: any) => r.row)).toEqual(now);
        expect(snapshot!.data.reflects.checkpoint).toBeGreaterThan(0);
      } finally {
        stale.close();
        await stale.done;
      }
    }
    const staleKey = await open("?key=store-3", { "Last-Event-ID": "someoneelse.3" });
    try {
      await waitFor(() => staleKey.events.length > 0, { message: "the snapshot of store-3" });
      expect(staleKey.events[0]).toMatchObject({
        event: "snapshot",
        data: { key: "store-3", row: now.find((r) => r.key === "store-3") },
      });
    } finally {
      staleKey.close();
      await staleKey.done;
    }
  });

  it("finds tables created later, follows a page layout change, and takes any key in the path", async () => {
    await createTable(nc, "hand_made", { step: "hand", partitions: 1 });
    const kv = await new Kvm(nc).open(tableBucket("hand_made"));
    const rows: [string, unknown][] = [
      ["a/b é", { key: "a/b é", n: 1 }],
      ["plain", { key: "plain", n: 2 }],
    ];
    await kv.put(pageKey(0, 0, 0), encodePage({ at: 1000, checkpoint: 1, rows }));
    await kv.put(indexKey(0), new TextEncoder().encode(JSON.stringify({ chunkBits: 0 })));
    expect((await get("/tables/hand_made")).status).toBe(404);
    await catalog.refresh();
    const replica = catalog.get("hand_made")!;
    expect(replica.rows()).toEqual([rows[0]![1], rows[1]![1]]);

    const odd = await get(`/tables/hand_made/rows/${encodeURIComponent("a/b é")}`);
    expect(odd.status).toBe(200);
    expect(((await odd.json()) as any).row).toEqual({ key: "a/b é", n: 1 });

    // A finer layout: pages first (not yet current), then the index switches to them.
    await kv.put(pageKey(0, 1, 0), encodePage({ at: 2000, checkpoint: 2, rows: [["a/b é", { key: "a/b é", n: 10 }]] }));
    await kv.put(pageKey(0, 1, 1), encodePage({ at: 2000, checkpoint: 2, rows: [["z", { key: "z", n: 3 }]] }));
    await kv.put(indexKey(0), new TextEncoder().encode(JSON.stringify({ chunkBits: 1 })));
    await waitFor(() => replica.get("z") !== undefined, { message: "the new layout applied" });
    expect(replica.rows()).toEqual([{ key: "a/b é", n: 10 }, { key: "z", n: 3 }]);
    expect(replica.reflectsPartition(0)).toMatchObject({ checkpoint: 2, at: 2000 });
    expect((await get("/tables/hand_made/rows/plain")).status).toBe(404);
  });
});

describe("the change log behind Last-Event-ID", () => {
  const page = decodePageFrom(encodePage({ at: 7, checkpoint: 1, rows: ["a", "b", "c", "d", "e"].map((key) => [key, { key }]) }));
  const append = (log: ChangeLog, ...rows: number[]) =>
    rows.map((r) => log.append("upsert", page.keys[r]!, 0, page.checkpoint, page.at, page, r))[0];

  it("gives the changes after an id while it holds them, and nothing it cannot vouch for", () => {
    const log = new ChangeLog("e1", 3);
    expect(log.resume(log.eventId(0))).toEqual([]);
    expect(append(log, 0, 1)).toBe(1);
    expect(log.resume("e1.0")!.map((c) => c.seq)).toEqual([1, 2]);
    expect(append(log, 2, 3, 4)).toBe(3);
    expect(log.last).toBe(5);
    expect(log.oldest).toBe(3);
    expect(log.resume("e1.2")!.map((c) => [c.seq, c.change.key])).toEqual([[3, "c"], [4, "d"], [5, "e"]]);
    expect(log.change(5)).toEqual({ op: "upsert", key: "e", row: { key: "e" }, partition: 0, checkpoint: 1, at: 7 });
    expect(log.append("delete", "e", 0, 2, 8)).toBe(6);
    expect(log.change(6)).toEqual({ op: "delete", key: "e", partition: 0, checkpoint: 2, at: 8 });
    expect([log.holds(3), log.holds(4), log.keyOf(6)]).toEqual([false, true, "e"]);
    expect(log.resume("e1.6")).toEqual([]);
    expect(log.resume("e1.2")).toBeUndefined(); // change 3 is gone from the ring
    expect(log.resume("e1.7")).toBeUndefined(); // ahead of the log
    expect(log.resume("e2.4")).toBeUndefined(); // another epoch
    expect(log.resume("e1.x")).toBeUndefined();
    expect(log.resume("e1")).toBeUndefined();
  });
});
