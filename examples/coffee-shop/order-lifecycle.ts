/**
 * The coffee shop's order lifecycle, as a user's own XState machine run per order id by a process
 * step: an order is placed, brewed and served, or abandoned when it is not brewing two minutes
 * (event time) after it was placed. Open orders (placed or brewing) are rows of the `open_orders`
 * table; an order that is served or abandoned leaves it (its machine is done). What happens to an
 * order (placed, then served or abandoned), a typed event, goes to the `order_outcomes` stream and
 * on to two tables per store: `serve_time_by_store` (orders served, the average and longest time to
 * serve) and `open_orders_by_store` (orders open now, orders abandoned).
 *
 * `addOrderLifecycle` adds these steps to any pipeline (the coffee shop's, in `eddy dev`);
 * `orderLifecycle` is a pipeline of them alone.
 *
 * @example
 * await publishOrderStatus(nc, { stream: "order_status", seed: 1, count: 1_000 });
 * const worker = await Worker.start(nc, orderLifecycle());
 * await readTable(nc, "open_orders"); // [{ key: "o-1-998", state: "brewing", context: { store: "store-2", ... } }, ...]
 */
import { assign, emit, setup } from "xstate";
import { type Pipeline, pipeline } from "@eddy/eddy";
import { OrderStatus } from "./orders.ts";

/** How long a placed order may wait to be brewed before it counts as abandoned. */
export const abandonAfterMs = 120_000;

/** What happened to an order, at event time `ts`. */
export type OrderOutcome =
  | { readonly type: "placed"; readonly orderId: string; readonly store: string; readonly ts: number }
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
    placed: emit(({ event }) => ({ type: "placed" as const, orderId: event.orderId, store: event.store, ts: event.ts })),
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
          actions: [assign(({ event }) => ({ orderId: event.orderId, store: event.store, placedAt: event.ts })), "placed"],
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
  /** Appended to the table and output stream names. Default "". */
  readonly suffix?: string;
}

/** Add the order lifecycle's steps (ids `order-status`, `by-order`, `order`, ...) to pipeline `p`. */
export function addOrderLifecycle(p: Pipeline, options: OrderLifecycleOptions = {}): void {
  const suffix = options.suffix ?? "";
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
    .keyBy("served-by-store", "store")
    .aggregate("serve-time", (a) => ({ served: a.count(), avgWaitMs: a.avg("waitMs"), longestWaitMs: a.max("waitMs") }))
    .toTable(`serve_time_by_store${suffix}`);
  orders
    .map("order-flow", (o) => ({ store: o.store, open: o.type === "placed" ? 1 : -1, abandoned: o.type === "abandoned" ? 1 : 0 }))
    .keyBy("flow-by-store", "store")
    .aggregate("open-orders", (a) => ({ open: a.sum("open"), abandoned: a.sum("abandoned") }))
    .toTable(`open_orders_by_store${suffix}`);
}

/** The order lifecycle as a pipeline of its own. */
export function orderLifecycle(
  options: OrderLifecycleOptions & { readonly id?: string; readonly partitions?: number } = {},
): Pipeline {
  const p = pipeline(options.id ?? "order-lifecycle", { partitions: options.partitions ?? 4 });
  addOrderLifecycle(p, options);
  return p;
}
