import { describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { coffeeShop } from "../examples/coffee-shop/pipeline.ts";
import { generateOrders, publishOrders } from "../examples/coffee-shop/orders.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

/** Revenue per store computed independently of Eddy, from the published orders. */
function expectedByStore(seed: number, count: number) {
  const out = new Map<string, { orders: number; revenue: number; items: number }>();
  for (const o of generateOrders({ seed, count })) {
    const row = out.get(o.store) ?? { orders: 0, revenue: 0, items: 0 };
    row.orders++;
    row.revenue += Math.round(o.qty * o.unitPrice * 100) / 100;
    row.items += o.qty;
    out.set(o.store, row);
  }
  return out;
}

describe("keyed aggregation into result tables", () => {
  const nats = useNatsServer();

  it("computes revenue per store and per item exactly", async () => {
    const nc = await nats.connect();
    const count = 20_000;
    await publishOrders(nc, { stream: "orders", seed: 7, count });
    const worker = await Worker.start(nc, coffeeShop(), { checkpointMs: 100 });
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("orders")).state.last_seq;
    await waitFor(() => worker.committedPosition("orders") >= last, { timeoutMs: 30_000, message: "pipeline caught up" });
    await worker.stop();

    const rows = await readTable<{ key: string; orders: number; revenue: number; items: number }>(nc, "revenue_by_store");
    const expected = expectedByStore(7, count);
    expect(rows.length).toBe(expected.size);
    for (const row of rows) {
      const want = expected.get(row.key)!;
      expect(row.orders).toBe(want.orders);
      expect(row.items).toBe(want.items);
      expect(row.revenue).toBeCloseTo(want.revenue, 6);
    }
    const items = await readTable<{ key: string; orders: number }>(nc, "revenue_by_item");
    expect(items.reduce((n, r) => n + r.orders, 0)).toBe(count);
  });
});
