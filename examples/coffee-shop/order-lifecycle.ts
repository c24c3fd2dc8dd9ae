/**
 * The coffee shop's order lifecycle, as a user's own XState machine run per order id by a process
 * step: an order is placed, brewed and served, or abandoned when it is not brewing two minutes
 * (event time) after it was placed. Open orders (placed or brewing) are rows of the `open_orders`
 * table; an order that is served or abandoned leaves it (its machine is done) and its outcome, a
 * typed event, goes to the `order_outcomes` stream and on to the `serve_time_by_store` table:
 * orders served and the average time to serve them, per store.
 *
 * @example
 * await publishOrderStatus(nc, { stream: "order_status", seed: 1, count: 1_000 });
 * const worker = await Worker.start(nc, orderLifecycle());
 * await readTable(nc, "open_orders"); // [{ key: "o-1-998", state: "brewing", context: { store: "store-2", ... } }, ...]
 */
import { assign, emit, setup } from "xstate";
import { type Pipeline, pipeline } from "../../src/pipeline/pipeline.ts";
import { OrderStatus } from "./orders.ts";

/** How long a placed order may wait to be brewed before it counts as abandoned. */
export const abandonAfterMs = 120_000;

/** What happened to an order, at event time `ts`. */
export type OrderOutcome =
  | {
    readonly type: "served";
    readonly orderId: string;
    readonly store: string;
    readonly placedAt: number;
    readonly waitMs: number;
    readonly ts: number;
  }
  | {
    readonly type: "abandoned";
    readonly orderId: string;
    readonly store: string;
    readonly placedAt: number;
    readonly ts: number;
  };

export const orderMachine = setup({
  types: {
    context: {} as { orderId: string; store: string; placedAt: number; brewingAt: number | null },
    events: {} as OrderStatus,
    emitted: {} as OrderOutcome,
  },
  delays: { abandonAfter: abandonAfterMs },
  actions: {
    served: emit(({ context, event }) => ({
      type: "served" as const,
      orderId: context.orderId,
      store: context.store,
      placedAt: context.placedAt,
      waitMs: event.ts - context.placedAt,
      ts: event.ts,
    })),
    abandoned: emit(({ context }) => ({
      type: "abandoned" as const,
      orderId: context.orderId,
      store: context.store,
      placedAt: context.placedAt,
      ts: context.placedAt + abandonAfterMs,
    })),
  },
}).createMachine({
  id: "order",
  initial: "new",
  context: { orderId: "", store: "", placedAt: 0, brewingAt: null },
  states: {
    new: {
      on: {
        placed: {
          target: "placed",
          actions: assign(({ event }) => ({ orderId: event.orderId, store: event.store, placedAt: event.ts })),
        },
        // Brewing or served without being placed (e.g. after it was abandoned): forget it.
        "*": "unknown",
      },
    },
    placed: {
      after: { abandonAfter: { target: "abandoned", actions: "abandoned" } },
      on: {
        brewing: { target: "brewing", actions: assign({ brewingAt: ({ event }) => event.ts }) },
        served: { target: "served", actions: "served" },
      },
    },
    brewing: { on: { served: { target: "served", actions: "served" } } },
    served: { type: "final" },
    abandoned: { type: "final" },
    unknown: { type: "final" },
  },
});

export interface OrderLifecycleOptions {
  /** The stream of order status events. Default "order_status". */
  readonly stream?: string;
  readonly partitions?: number;
  /** The pipeline id (names its state). Default "order-lifecycle". */
  readonly id?: string;
  /** Appended to the table and output stream names. Default "". */
  readonly suffix?: string;
}

export function orderLifecycle(options: OrderLifecycleOptions = {}): Pipeline {
  const suffix = options.suffix ?? "";
  const p = pipeline(options.id ?? "order-lifecycle", { partitions: options.partitions ?? 4 });
  const orders = p
    .source("order-status", {
      stream: options.stream ?? "order_status",
      schema: OrderStatus,
      eventTime: (s) => s.ts,
      maxOutOfOrderMs: 2_000,
    })
    .keyBy("by-order", "orderId")
    .process("order", orderMachine);
  orders.toTable(`open_orders${suffix}`);
  orders.toStream("order-outcomes", { stream: `order_outcomes${suffix}` });
  orders
    .filter("served", (o): o is Extract<OrderOutcome, { type: "served" }> => o.type === "served")
    .keyBy("by-store", "store")
    .aggregate("serve-time", (a) => ({ served: a.count(), avgWaitMs: a.avg("waitMs"), longestWaitMs: a.max("waitMs") }))
    .toTable(`serve_time_by_store${suffix}`);
  return p;
}
