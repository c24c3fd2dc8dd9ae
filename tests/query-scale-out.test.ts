/**
 * Query serving scales out like the workers: any number of `eddy serve` processes over the same
 * tables, each with its own replicas. Two of them, started as child processes beside a running
 * coffee-shop pipeline (an `eddy run` worker), answer every row of every table exactly as the
 * tables' buckets hold them once the pipeline has caught up, and the same group; both follow as
 * more orders arrive, by their rows and by their change streams; with one stopped, the other keeps
 * answering and following on its own.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { defaultStartTime, publishOrders } from "../examples/coffee-shop/orders.ts";
import { listTables, readTable } from "../src/state/table.ts";
import { type ServeProcess, startServe } from "./support/eddy-command.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";
import { caughtUp, coffeeShopActors, startWorkerProcess, type WorkerProcess } from "./support/worker-process.ts";

type Rows = Record<string, unknown>;

/** Every row of a table through a service's API, page by page, by row key. */
async function servedRows(base: string, table: string): Promise<Rows> {
  const rows: Rows = {};
  let cursor: string | null = null;
  do {
    const query: string = `limit=1000${cursor ? `&cursor=${cursor}` : ""}`;
    const response = await fetch(`${base}/tables/${table}/rows?${query}`);
    if (response.status !== 200) throw new Error(`${base} ${table}: HTTP ${response.status}`);
    const page = (await response.json()) as { rows: { key: string; row: unknown }[]; next: string | null };
    for (const r of page.rows) rows[String(r.key)] = r.row;
    cursor = page.next;
  } while (cursor);
  return rows;
}

/** Rows in one order, whatever order they were read in. */
const sorted = (rows: readonly unknown[]) => rows.map((r) => JSON.stringify(r)).sort();

/** Wait until each service answers every table exactly as the buckets hold it. */
async function servesEqualTables(nc: NatsConnection, serves: readonly ServeProcess[], message: () => string) {
  await waitFor(async () => {
    const tables = await listTables(nc);
    for (const serve of serves) {
      const listed = (await (await fetch(`${serve.url}/tables`)).json()) as { tables: { name: string }[] };
      expect(listed.tables.map((t) => t.name)).toEqual(tables);
      for (const table of tables) {
        expect(sorted(Object.values(await servedRows(serve.url, table))), `${serve.url} ${table}`).toEqual(
          sorted(await readTable(nc, table)),
        );
      }
    }
    return true;
  }, { timeoutMs: 30_000, intervalMs: 200, message });
}

/** A change stream of one table from one service, collecting the changes' rows as they come. */
function follow(base: string, table: string) {
  const abort = new AbortController();
  const changes: { key: string; row: { orders: number } }[] = [];
  let ready = false;
  const reading = (async () => {
    const response = await fetch(`${base}/tables/${table}/changes`, { signal: abort.signal });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const type = /^event: (\w+)$/m.exec(event)?.[1];
        const data = /^data: (.*)$/m.exec(event)?.[1];
        if (type === "ready") ready = true;
        if (type === "change" && data) changes.push(JSON.parse(data));
      }
    }
  })().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  return {
    changes,
    ready: () => ready,
    /** The latest `orders` of each key, from the changes received. */
    latest: () => Object.fromEntries(changes.map((c) => [c.key, c.row.orders])),
    stop: async () => {
      abort.abort();
      await reading;
    },
  };
}

const totalOrders = (rows: Rows) => Object.values(rows).reduce((n: number, r) => n + (r as { orders: number }).orders, 0);

describe("two eddy serve processes over the same tables", () => {
  const nats = useNatsServer();

  it("answer the same rows, the same group, and both stay live; either alone too", { timeout: 180_000 }, async () => {
    const nc = await nats.connect();
    await publishOrders(nc, { stream: "orders", seed: 31, count: 3_000 });
    let worker: WorkerProcess | undefined;
    const serves: ServeProcess[] = [];
    const streams: ReturnType<typeof follow>[] = [];
    const output = () =>
      `--- worker\n${worker?.output().slice(-2000)}\n` +
      serves.map((s, i) => `--- serve ${i}\n${s.err().slice(-2000)}`).join("\n");
    try {
      worker = startWorkerProcess(nats.url, "examples/coffee-shop/pipeline.ts", "coffeeShop", [
        "--worker-id",
        "w1",
        "--checkpoint-ms",
        "200",
      ]);
      serves.push(await startServe(nats.url, ["--refresh-ms", "500"]), await startServe(nats.url, ["--refresh-ms", "500"]));
      const [a, b] = serves as [ServeProcess, ServeProcess];
      expect(a.url).not.toBe(b.url);
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 60_000,
        message: () => `the pipeline caught up\n${output()}`,
      });
      await servesEqualTables(nc, serves, () => `both serve every table as its bucket holds it\n${output()}`);
      expect(totalOrders(await servedRows(a.url, "revenue_by_store"))).toBe(3_000);

      // The same group, from KV, on both: one worker holding every partition.
      for (const serve of serves) {
        await waitFor(async () => {
          const group = (await (await fetch(`${serve.url}/group`)).json()) as {
            pipeline: string;
            self: string | null;
            members: { id: string; live: boolean }[];
            owners: Record<string, string>;
            moves: number;
          };
          expect(group).toMatchObject({ pipeline: "coffee-shop", self: null, moves: 0, members: [{ id: "w1", live: true }] });
          expect(Object.values(group.owners).filter((o) => o === "w1").length).toBe(coffeeShopActors);
          return true;
        }, { timeoutMs: 20_000, message: () => `${serve.url}/group shows w1 holding every partition\n${output()}` });
        const groups = (await (await fetch(`${serve.url}/groups`)).json()) as { groups: { pipeline: string }[] };
        expect(groups.groups.map((g) => g.pipeline)).toEqual(["coffee-shop"]);
        const missing = await fetch(`${serve.url}/groups/no-such-pipeline`);
        expect(missing.status).toBe(404);
        expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("group_not_found");
      }

      // More orders: both follow, by their rows and by their change streams.
      streams.push(follow(a.url, "revenue_by_store"), follow(b.url, "revenue_by_store"));
      await waitFor(() => streams.every((s) => s.ready()), { timeoutMs: 10_000, message: "both change streams ready" });
      await publishOrders(nc, { stream: "orders", seed: 32, count: 2_000, startTime: defaultStartTime + 600_000 });
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 60_000,
        message: () => `the pipeline caught up again\n${output()}`,
      });
      await servesEqualTables(nc, serves, () => `both follow the tables\n${output()}`);
      const stores = await readTable<{ key: string; orders: number }>(nc, "revenue_by_store");
      expect(stores.reduce((n, r) => n + r.orders, 0)).toBe(5_000);
      const want = Object.fromEntries(stores.map((r) => [r.key, r.orders]));
      await waitFor(() => {
        for (const s of streams) expect(s.latest()).toEqual(want);
        return true;
      }, { timeoutMs: 20_000, message: "both change streams end at the tables' rows" });
      for (const s of streams) expect(s.latest()).toEqual(want);

      // Each has its own replicas: with a stopped, b answers and follows alone.
      await Promise.all(streams.splice(0).map((s) => s.stop()));
      expect(await a.stop()).toBe(0);
      serves.shift();
      await publishOrders(nc, { stream: "orders", seed: 33, count: 500, startTime: defaultStartTime + 1_200_000 });
      await waitFor(() => caughtUp(nc, "coffee-shop", { orders: "orders" }, coffeeShopActors), {
        timeoutMs: 60_000,
        message: () => `the pipeline caught up a third time\n${output()}`,
      });
      await servesEqualTables(nc, [b], () => `b follows alone\n${output()}`);
      expect(totalOrders(await servedRows(b.url, "revenue_by_store"))).toBe(5_500);
    } finally {
      await Promise.all(streams.map((s) => s.stop()));
      for (const serve of serves) expect(await serve.stop()).toBe(0);
      worker?.kill("SIGTERM");
      if (worker) expect(await worker.exited).toBe(0);
    }
  });
});
