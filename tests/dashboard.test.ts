/**
 * The coffee-shop dashboard in a real browser: a real nats-server, the coffee-shop pipeline run by
 * a Worker, the query API serving the page on a free port, and Debian's chromium driven by
 * playwright-core. What the page shows must equal the result tables (read independently with
 * readTable) and follow them as more orders arrive, the orders in progress (the order lifecycle
 * steps) included; selecting an operator actor shows a sample of its keyed state and its recent
 * inputs. A screenshot is saved and its path printed. The page is the pipeline's own
 * (`coffeeShop().dashboard`, built from examples/coffee-shop/dashboard/); without one, `GET /`
 * serves the overview, which lists the tables and the actors. The generated page modules must be
 * what scripts/build-pages.ts builds from their sources now.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { defaultStartTime, publishOrders, publishOrderStatus } from "../examples/coffee-shop/orders.ts";
import { readSideOutput } from "../src/log/side-outputs.ts";
import { keyHash, partitionOf } from "../src/core/partition.ts";
import { listenNode } from "../src/platform/http-node.ts";
import type { HttpListener } from "../src/platform/platform.ts";
import { Worker } from "../src/runtime/worker.ts";
import { createQueryApi, type QueryApi } from "../src/serve/api.ts";
import { Catalog } from "../src/serve/catalog.ts";
import { readTable } from "../src/state/table.ts";
import { generatedModule, pages } from "../scripts/build-pages.ts";
import { type Chromium, launchChromium } from "./support/chromium.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const partitions = 4;

type StoreRow = { key: string; orders: number; revenue: number; avgTicket: number };
type MinuteRow = { key: string; orders: number; revenue: number; windowStart: number; windowEnd: number };
type TopRow = { key: string; top: { key: string; weight: number }[]; windowStart: number; windowEnd: number };
type FlowRow = { key: string; open: number; abandoned: number };
type ServeRow = { key: string; served: number; avgWaitMs: number; longestWaitMs: number };
type Progress = { store: string; open: number; served: number; avgWaitMs: number; abandoned: number };

/** What the page shows, read from its DOM (raw values from data-value attributes). */
interface Shown {
  stores: { key: string; orders: number; revenue: number; revenueText: string }[];
  points: { store: string; window: number; revenue: number; orders: number }[];
  tops: { store: string; row: string; items: { item: string; rank: number; weight: number }[] }[];
  progress: Progress[];
  revenue: number;
  dead: string;
  late: string;
  lag: string;
  processed: string;
}

/** The little of the DOM `shown` uses (the type check runs without the DOM library). */
interface DomNode {
  readonly textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): Iterable<DomNode>;
}

function shown(page: Page): Promise<Shown> {
  return page.evaluate(() => {
    const document = (globalThis as unknown as { document: DomNode & { getElementById(id: string): DomNode | null } }).document;
    const num = (node: DomNode | null | undefined) => Number(node?.getAttribute("data-value"));
    return {
      stores: [...document.querySelectorAll("#stores tr[data-store]")].map((tr) => ({
        key: tr.getAttribute("data-store")!,
        orders: num(tr.querySelector("[data-field=orders]")),
        revenue: num(tr.querySelector("[data-field=revenue]")),
        revenueText: tr.querySelector("[data-field=revenue]")!.textContent!,
      })),
      points: [...document.querySelectorAll("#chart circle[data-store]")].map((c) => ({
        store: c.getAttribute("data-store")!,
        window: Number(c.getAttribute("data-window")),
        revenue: num(c),
        orders: Number(c.getAttribute("data-orders")),
      })),
      tops: [...document.querySelectorAll("#tops .top-store")].map((card) => ({
        store: card.getAttribute("data-store")!,
        row: card.getAttribute("data-row")!,
        items: [...card.querySelectorAll("li")].map((li) => ({
          item: li.getAttribute("data-item")!,
          rank: Number(li.getAttribute("data-rank")),
          weight: num(li),
        })),
      })),
      progress: [...document.querySelectorAll("#lifecycle-stores tr[data-store]")].map((tr) => ({
        store: tr.getAttribute("data-store")!,
        open: num(tr.querySelector("[data-field=open]")),
        served: num(tr.querySelector("[data-field=served]")),
        avgWaitMs: num(tr.querySelector("[data-field=avgWaitMs]")),
        abandoned: num(tr.querySelector("[data-field=abandoned]")),
      })),
      revenue: num(document.getElementById("kpi-revenue")),
      dead: document.getElementById("kpi-dead")!.getAttribute("data-value")!,
      late: document.getElementById("kpi-late")!.getAttribute("data-value")!,
      lag: document.getElementById("kpi-lag")!.getAttribute("data-value")!,
      processed: document.getElementById("kpi-processed")!.textContent!,
    };
  });
}

/** What the page should show, from the result tables read straight from their KV buckets. */
async function expected(nc: NatsConnection) {
  const stores = (await readTable<StoreRow>(nc, "revenue_by_store")).sort((a, b) => (a.key < b.key ? -1 : 1));
  const minutes = await readTable<MinuteRow>(nc, "revenue_per_store_minute");
  const tops = await readTable<TopRow>(nc, "top_items_per_store");
  const latestTop = stores.flatMap((s) => {
    const mine = tops.filter((t) => t.key === s.key).sort((a, b) => b.windowStart - a.windowStart);
    return mine.length ? [{ store: s.key, row: mine[0]! }] : [];
  });
  const flow = await readTable<FlowRow>(nc, "open_orders_by_store");
  const serve = await readTable<ServeRow>(nc, "serve_time_by_store");
  const progress = flow.map((f) => {
    const s = serve.find((r) => r.key === f.key);
    return { store: f.key, open: f.open, served: s?.served ?? 0, avgWaitMs: s?.avgWaitMs ?? 0, abandoned: f.abandoned };
  }).sort((a, b) => a.store.localeCompare(b.store));
  return {
    progress,
    stores: stores.map((s) => ({ key: s.key, orders: s.orders, revenue: s.revenue })),
    points: minutes
      .map((m) => ({ store: m.key, window: m.windowStart, revenue: m.revenue, orders: m.orders }))
      .sort((a, b) => a.store.localeCompare(b.store) || a.window - b.window),
    tops: latestTop.map(({ store, row }) => ({
      store,
      row: `${store}|${row.windowStart}`,
      items: row.top.map((e, i) => ({ item: e.key, rank: i + 1, weight: e.weight })),
    })),
    revenue: stores.reduce((n, s) => n + s.revenue, 0),
  };
}

function comparable(page: Shown) {
  return {
    stores: page.stores.map(({ key, orders, revenue }) => ({ key, orders, revenue })),
    points: [...page.points].sort((a, b) => a.store.localeCompare(b.store) || a.window - b.window),
    tops: page.tops,
    progress: page.progress,
  };
}

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

describe("the coffee-shop dashboard in chromium", () => {
  const nats = useNatsServer();
  let nc: NatsConnection;
  let worker: Worker;
  let catalog: Catalog;
  let api: QueryApi;
  let listener: HttpListener;
  let browser: Chromium;
  let context: BrowserContext;
  let page: Page;

  async function caughtUp(): Promise<number> {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("orders")).state.last_seq;
    const lastStatus = (await jsm.streams.info("order_status")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last && worker.committedPosition("order-status") >= lastStatus, {
      timeoutMs: 30_000,
      message: "pipeline caught up",
    });
    return last;
  }

  /** Wait until the page shows exactly what the tables hold (both read again on every try). */
  async function pageEqualsTables(message: string) {
    // A failed expectation counts as "not yet"; at the deadline waitFor reports its diff.
    await waitFor(async () => {
      const want = await expected(nc);
      const got = await shown(page);
      expect(comparable(got)).toEqual({ stores: want.stores, points: want.points, tops: want.tops, progress: want.progress });
      expect(got.revenue).toBeCloseTo(want.revenue, 6);
      return true;
    }, { timeoutMs: 20_000, intervalMs: 250, message });
  }

  beforeAll(async () => {
    browser = await launchChromium();
    ({ context, page } = browser);
    nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 11, count: 3000 });
    await publishOrderStatus(nc, { stream: "order_status", seed: 11, count: 3000 });
    const js = jetstream(nc);
    // One order far behind the watermark (late for both windowed steps) and one that is not JSON.
    const lateOrder = {
      orderId: "late-1",
      store: "store-2",
      item: "latte",
      qty: 1,
      unitPrice: 3.8,
      ts: defaultStartTime - 30_000,
    };
    await js.publish("orders.store-2", JSON.stringify(lateOrder));
    await js.publish("orders.store-1", "this is not an order");
    const shop = coffeeShop({ partitions, orderStatus: "order_status" });
    worker = await Worker.start(nc, shop, { checkpointMs: 100 });
    await caughtUp();
    catalog = await Catalog.open(nc, { refreshMs: 0 });
    api = createQueryApi(catalog, { worker, lagRefreshMs: 200, ...(shop.dashboard ? { dashboard: shop.dashboard } : {}) });
    listener = await listenNode(api.fetch, { port: 0 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    api?.close();
    await listener?.close();
    await catalog?.close();
    await worker?.stop();
  }, 30_000);

  it(
    "shows what the result tables hold: revenue per store and per minute, top items, counters",
    { timeout: 60_000 },
    async () => {
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      const response = await page.goto(listener.url);
      expect(response?.status()).toBe(200);
      expect(await page.title()).toContain("coffee shop");
      await pageEqualsTables("the page shows the tables");

      const got = await shown(page);
      const want = await expected(nc);
      expect(got.stores.length).toBe(5);
      expect(got.points.length).toBeGreaterThanOrEqual(5 * 4); // four closed minutes per store
      expect(got.tops.length).toBe(5);
      expect(got.progress.length).toBe(5);
      expect(got.progress.every((p) => p.open > 0 && p.served > 0 && p.avgWaitMs >= 35_000 && p.abandoned > 0)).toBe(true);
      for (const store of got.stores) expect(store.revenueText).toBe(money.format(store.revenue));
      expect(want.tops.every((t) => t.items.length === 5)).toBe(true);

      const dead = await readSideOutput(nc, "coffee-shop", "dlq");
      const late = await readSideOutput(nc, "coffee-shop", "late");
      expect(dead.length).toBe(1);
      expect(new Set(late.map((l) => l.sourceSeq)).size).toBe(1);
      await waitFor(async () => {
        const now = await shown(page);
        return now.dead === String(dead.length) && now.late === "1" && now.lag === "0";
      }, { timeoutMs: 10_000, message: "dead letters 1, late orders 1, lag 0 on the page" });
      const last = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
      expect((await shown(page)).processed).toContain(new Intl.NumberFormat("en-US").format(last));
      expect(errors).toEqual([]);
    },
  );

  it("follows the tables as more orders arrive", { timeout: 90_000 }, async () => {
    const before = await shown(page);
    // Two more minutes of orders, after the first five: new windows close, every store sells more.
    await publishOrders(nc, { stream: "orders", seed: 12, count: 1200, startTime: defaultStartTime + 300_000 });
    await publishOrderStatus(nc, { stream: "order_status", seed: 12, count: 1200, startTime: defaultStartTime + 300_000 });
    const last = await caughtUp();
    await pageEqualsTables("the page follows the tables");
    const after = await shown(page);
    expect(after.revenue).toBeGreaterThan(before.revenue);
    expect(after.points.length).toBeGreaterThan(before.points.length);
    for (const store of after.stores) {
      expect(store.orders).toBeGreaterThan(before.stores.find((s) => s.key === store.key)!.orders);
    }
    expect(after.tops.map((t) => t.row)).not.toEqual(before.tops.map((t) => t.row));
    const served = (p: Shown) => p.progress.reduce((n, s) => n + s.served, 0);
    expect(served(after)).toBeGreaterThan(served(before));
    await waitFor(async () => (await shown(page)).processed.includes(new Intl.NumberFormat("en-US").format(last)), {
      message: "the processed count follows the stream",
    });
  });

  it("serves the generated page modules as scripts/build-pages.ts builds them from their sources now", async () => {
    expect(pages.length).toBe(2);
    for (const source of pages) {
      const fresh = await generatedModule(source);
      const onDisk = readFileSync(join(process.cwd(), source.out), "utf8");
      expect(onDisk === fresh, `${source.out} is stale: run \`npm run pages\``).toBe(true);
    }
    expect(coffeeShop().dashboard?.html).toContain("<title>Eddy · coffee shop</title>");
    expect(coffeeShop().dashboard?.html).not.toMatch(/<script [^>]*src=|<link [^>]*href=/); // everything inline
  });

  it(
    "serves the overview without a dashboard: the tables with row counts and links, and the actors",
    { timeout: 60_000 },
    async () => {
      const plain = createQueryApi(catalog, { worker, lagRefreshMs: 200 });
      const bare = createQueryApi(catalog, {}); // `eddy serve`: no worker in the process
      const plainListener = await listenNode(plain.fetch, { port: 0 });
      const bareListener = await listenNode(bare.fetch, { port: 0 });
      const overview = await context.newPage();
      const errors: string[] = [];
      overview.on("pageerror", (error) => errors.push(error.message));
      type Listed = { name: string; rows: number; href: string }[];
      const listed = () =>
        overview.locator("#tables tr[data-table]").evaluateAll((rows) =>
          rows.map((r) => ({
            name: r.getAttribute("data-table")!,
            rows: Number(r.querySelector("[data-field=rows]")!.getAttribute("data-value")),
            href: r.querySelector("a")!.getAttribute("href")!,
          }))
        ) as Promise<Listed>;
      const want = () => catalog.names().map((name) => ({ name, rows: catalog.get(name)!.size, href: `/tables/${name}/rows` }));
      try {
        const response = await overview.goto(plainListener.url);
        expect(response?.status()).toBe(200);
        expect(await overview.title()).toBe("Eddy");
        await waitFor(async () => {
          expect(await listed()).toEqual(want());
          return true;
        }, { timeoutMs: 10_000, intervalMs: 250, message: "the overview lists every table with its row count" });
        expect((await listed()).length).toBeGreaterThanOrEqual(9);
        const revenue = (await listed()).find((t) => t.name === "revenue_by_store")!;
        expect(revenue.rows).toBe(5);
        const rows = (await (await fetch(`${plainListener.url}${revenue.href}`)).json()) as { rows: unknown[] };
        expect(rows.rows.length).toBe(5); // the link answers the table's rows
        await waitFor(async () => (await overview.locator("#actors tr[data-actor]").count()) === worker.status().length, {
          timeoutMs: 10_000,
          message: "the overview lists every operator actor",
        });
        expect(await overview.locator("#pipeline").textContent()).toBe("coffee-shop");
        mkdirSync("test-results", { recursive: true });
        await overview.screenshot({ path: join(process.cwd(), "test-results", "overview.png"), fullPage: true });

        await overview.goto(bareListener.url);
        await waitFor(async () => (await listed()).length === catalog.names().length, {
          timeoutMs: 10_000,
          message: "the overview without a worker lists the tables",
        });
        expect(await overview.locator("#actors-section").isHidden()).toBe(true);
        expect(await overview.locator("#pipeline").textContent()).toBe("no worker runs in this service");
        expect(errors).toEqual([]);
      } finally {
        await overview.close();
        plain.close();
        bare.close();
        await plainListener.close();
        await bareListener.close();
      }
    },
  );

  it("serves the actors as JSON, with the query API's error shape", async () => {
    const get = async (path: string) => {
      const response = await fetch(`${listener.url}${path}`);
      return { status: response.status, body: (await response.json()) as any };
    };
    const all = await get("/actors");
    expect(all.status).toBe(200);
    expect(all.body.pipeline).toBe("coffee-shop");
    expect(all.body.actors.length).toBe(worker.status().length);
    expect(all.body.sources).toEqual([
      expect.objectContaining({ id: "orders", stream: "orders" }),
      // The late orders, from the per-minute windows to their count, over an internal stream.
      expect.objectContaining({ id: "late-orders", stream: "eddy-edge-coffee-shop-late-orders" }),
      expect.objectContaining({ id: "order-status", stream: "order_status" }),
      // The order lifecycle's outcomes, from the process step to the two per-store aggregates.
      expect.objectContaining({ id: "order", stream: "eddy-edge-coffee-shop-order" }),
    ]);
    const one = all.body.actors.find((a: any) => a.step === "store-revenue" && a.partition === 1);
    expect(one).toMatchObject({ state: expect.stringMatching(/running|checkpointing/), keys: expect.any(Number) });
    expect(one.checkpoint).toBeGreaterThan(0);
    expect(typeof one.committedAt).toBe("number");

    const detail = await get("/actors/store-revenue/1?sample=1");
    expect(detail.status).toBe(200);
    expect(detail.body.sample.length).toBe(Math.min(1, detail.body.keys));
    expect(detail.body.recent.length).toBeGreaterThan(0);
    const cases: [string, number, string][] = [
      ["/actors/store-revenue/x", 400, "bad_parameter"],
      ["/actors/store-revenue/1?sample=-1", 400, "bad_parameter"],
      ["/actors/store-revenue/1?sample=100000", 400, "bad_parameter"],
      ["/actors/store-revenue/1?limit=3", 400, "bad_parameter"],
      ["/actors/store-revenue/99", 404, "actor_not_found"],
      ["/actors/no-such-step/0", 404, "actor_not_found"],
    ];
    for (const [path, status, code] of cases) {
      const answer = await get(path);
      expect(answer.status, path).toBe(status);
      expect(answer.body.error.code, path).toBe(code);
      expect(answer.body.error.message.length, path).toBeGreaterThan(10);
    }
  });

  it("shows an operator actor's keyed state and recent inputs when it is selected", { timeout: 60_000 }, async () => {
    const stores = (await readTable<StoreRow>(nc, "revenue_by_store")).map((s) => s.key);
    const status = worker.status().find((a) => a.step === "store-revenue" && a.keys > 0)!;
    const held = stores.filter((s) => partitionOf(keyHash(s), partitions) === status.partition).sort();
    expect(held.length).toBe(status.keys);

    const id = `store-revenue/${status.partition}`;
    await page.click(`#actors tr[data-actor="${id}"]`);
    await waitFor(async () => (await page.locator("#actor-state tbody tr").count()) > 0, {
      timeoutMs: 10_000,
      message: "the state sample of the selected actor",
    });
    expect(await page.locator(`#actors tr[data-actor="${id}"]`).getAttribute("class")).toContain("selected");
    const keys = await page.locator("#actor-state tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-key")));
    expect(keys.sort()).toEqual(held);
    const stateText = await page.locator("#actor-state").textContent();
    expect(stateText).toMatch(/\d/); // the aggregate's state values

    const recent = await page.locator("#actor-recent tbody tr").evaluateAll((rows) =>
      rows.map((r) => ({ seq: Number(r.getAttribute("data-seq")), key: r.getAttribute("data-key")!, text: r.textContent! }))
    );
    expect(recent.length).toBeGreaterThan(0);
    expect(recent.length).toBeLessThanOrEqual(20);
    const lastSeq = (await (await jetstreamManager(nc)).streams.info("orders")).state.last_seq;
    for (const input of recent) {
      expect(held).toContain(input.key);
      expect(input.seq).toBeLessThanOrEqual(lastSeq);
      expect(input.text).toMatch(/item \S+/); // the record's value, field by field
    }
    const seqs = recent.map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a)); // newest first

    mkdirSync("test-results", { recursive: true });
    const path = join(process.cwd(), "test-results", "dashboard.png");
    await page.screenshot({ path, fullPage: true });
    console.log(`dashboard screenshot: ${path}`);
  });
});
