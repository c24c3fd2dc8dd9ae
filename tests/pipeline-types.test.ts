/**
 * The composition API's types: the key type and the aggregate's row type are inferred from the
 * source schema (an effect Schema or any Standard Schema: zod, valibot, arktype; the events are the
 * schema's output type), and a wrong field name is a compile error (checked by `tsc` in `npm test`).
 */
import { describe, expect, expectTypeOf, it } from "vitest";
import { Schema } from "effect";
import { type } from "arktype";
import * as v from "valibot";
import { z } from "zod";
import { Order } from "../examples/coffee-shop/orders.ts";
import { ConfigError, pipeline, type Stream, type Table } from "@eddy/eddy"; // the public entry, as users import it

/** The events of a stream. */
type EventOf<S> = S extends Stream<infer T> ? T : never;

describe("composition API types", () => {
  it("infers the key type and the row type", () => {
    const p = pipeline("types");
    const orders = p.source("orders", { stream: "orders", schema: Order });
    const table = orders
      .keyBy("by-store", "store")
      .aggregate("revenue", (a) => ({
        orders: a.count(),
        revenue: a.sum((o) => o.qty * o.unitPrice),
        biggest: a.max("qty"),
        mean: a.avg("unitPrice"),
        items: a.reduce([] as string[], (acc, o) => [...acc, o.item]),
      }))
      .toTable("types_revenue");
    expectTypeOf(table).toEqualTypeOf<
      Table<
        { readonly key: string } & {
          readonly orders: number;
          readonly revenue: number;
          readonly biggest: number;
          readonly mean: number;
          readonly items: string[];
        }
      >
    >();

    const byQty = orders.keyBy("by-qty", (o) => o.qty).aggregate("n", (a) => ({ n: a.count() })).toTable("types_qty");
    expectTypeOf<NonNullable<typeof byQty.row>["key"]>().toEqualTypeOf<number>();

    const mapped = orders.map("with-total", (o) => ({ store: o.store, total: o.qty * o.unitPrice }));
    mapped.keyBy("k", "store").aggregate("t", (a) => ({ total: a.sum("total") })).toTable("types_total");
    expect(p.steps.map((s) => s.id)).toEqual([
      "orders",
      "by-store",
      "revenue",
      "types_revenue",
      "by-qty",
      "n",
      "types_qty",
      "with-total",
      "k",
      "t",
      "types_total",
    ]);
  });

  it("rejects wrong field names at compile time", () => {
    const p = pipeline("types-errors");
    const orders = p.source("orders", { stream: "orders", schema: Order });
    // @ts-expect-error: there is no field "shop"
    orders.keyBy("a", "shop");
    // @ts-expect-error: the field is "qty", not "quantity"
    orders.keyBy("b", "quantity");
    const keyed = orders.keyBy("c", "store");
    // @ts-expect-error: "store" is not numeric, so it cannot be summed
    keyed.aggregate("d", (a) => ({ x: a.sum("store") }));
    // @ts-expect-error: no field "price"
    keyed.aggregate("e", (a) => ({ x: a.max("price") }));
    // @ts-expect-error: "key" is reserved for the row's key
    keyed.aggregate("f", (a) => ({ key: a.count() }));
    const Point = Schema.Struct({ x: Schema.Number, tags: Schema.Array(Schema.String) });
    // @ts-expect-error: an array is not a key
    p.source("points", { stream: "points", schema: Point }).keyBy("g", "tags");
  });

  it("types streams from Standard Schemas by their output type", () => {
    const p = pipeline("types-standard");
    const zodOrders = p.source("zod-orders", {
      stream: "orders",
      schema: z.object({ store: z.string(), qty: z.int(), price: z.string().transform(Number), ts: z.number() }),
      eventTime: (o) => o.ts,
    });
    expectTypeOf<EventOf<typeof zodOrders>>().toEqualTypeOf<{ store: string; qty: number; price: number; ts: number }>();
    zodOrders.keyBy("z1", "store").aggregate("z2", (a) => ({ revenue: a.sum("price"), n: a.count() })).toTable("types_zod");
    // @ts-expect-error: there is no field "shop"
    zodOrders.keyBy("z3", "shop");
    // @ts-expect-error: "store" is not numeric, so it cannot be summed
    zodOrders.keyBy("z4", "qty").aggregate("z5", (a) => ({ x: a.sum("store") }));

    const valibotOrders = p.source("valibot-orders", {
      stream: "orders",
      schema: v.object({ store: v.string(), qty: v.pipe(v.number(), v.integer()), tags: v.array(v.string()) }),
    });
    expectTypeOf<EventOf<typeof valibotOrders>>().toEqualTypeOf<{ store: string; qty: number; tags: string[] }>();
    const byStore = valibotOrders.keyBy("v1", "store");
    // @ts-expect-error: no field "price"
    byStore.aggregate("v2", (a) => ({ x: a.max("price") }));
    // @ts-expect-error: an array is not a key
    valibotOrders.keyBy("v3", "tags");

    const arkOrders = p.source("ark-orders", { stream: "orders", schema: type({ store: "string", qty: "number" }) });
    expectTypeOf(arkOrders.keyBy("a1", "store").aggregate("a2", (a) => ({ qty: a.sum("qty") })).toTable("types_ark").row)
      .toEqualTypeOf<
        ({ readonly key: string } & { readonly qty: number }) | undefined
      >();
    // @ts-expect-error: the field is "qty", not "quantity"
    arkOrders.keyBy("a3", "quantity");

    const effectStandard = p.source("effect-std", { stream: "orders", schema: Schema.standardSchemaV1(Order) });
    expectTypeOf<EventOf<typeof effectStandard>>().toEqualTypeOf<Order>();

    const products = p.lookup("products", { bucket: "products", schema: z.object({ brand: z.string() }) });
    zodOrders.join("with-brand", products, "store", (o, m) => {
      expectTypeOf(m).toEqualTypeOf<{ brand: string }>();
      // @ts-expect-error: the lookup's values have no "label"
      return { ...o, label: m.label };
    });
    // @ts-expect-error: not a schema (and a ConfigError when the types are bypassed)
    expect(() => p.source("not-a-schema", { stream: "orders", schema: { parse: (x: unknown) => x } })).toThrow(ConfigError);
  });

  it("types windowed rows and requires event time for windows", () => {
    const p = pipeline("types-windows");
    const timed = p.source("orders", { stream: "orders", schema: Order, eventTime: (o) => o.ts, maxOutOfOrderMs: 500 });
    const out = timed
      .keyBy("by-item", "item")
      .window("five-minutes", { size: 300_000, slide: 60_000 })
      .aggregate("sold", (a) => ({ sold: a.sum("qty") }));
    expectTypeOf<NonNullable<typeof out.row>>().toEqualTypeOf<
      { readonly key: string } & { readonly sold: number } & { readonly windowStart: number; readonly windowEnd: number }
    >();
    expectTypeOf(out.toTable("sold_per_window").row).toEqualTypeOf<typeof out.row>();
    const untimed = p.source("plain", { stream: "plain", schema: Order });
    expect(() => untimed.keyBy("k", "store").window("w", { size: 1000 })).toThrow(/needs event time/);
    expect(() => timed.keyBy("k2", "store").window("w2", { size: 1000, slide: 300 })).toThrow(/do not make a window/);
  });

  it("rejects bad ids and duplicate steps with a ConfigError", () => {
    const p = pipeline("ids");
    const orders = p.source("orders", { stream: "orders", schema: Order });
    expect(() => orders.map("has space", (o) => o)).toThrow(ConfigError);
    expect(() => orders.map("orders", (o) => o)).toThrow(/two steps with id "orders"/);
    expect(() => pipeline("p", { partitions: 0 })).toThrow(/partitions must be an integer/);
  });
});
