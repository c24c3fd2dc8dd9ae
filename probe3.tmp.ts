import { Schema } from "effect";
import { z } from "zod";
import * as v from "valibot";
import { toStandardJsonSchema } from "@valibot/to-json-schema";
import { type } from "arktype";
import { SchemaDecoder } from "./src/core/schema.ts";
import { Order, MenuItem, OrderStatus } from "./examples/coffee-shop/orders.ts";
import { Bid, Person, Auction } from "./examples/nexmark/events.ts";
const cases: [string, any][] = [
  ["effect Order", Order], ["effect std Order", Schema.standardSchemaV1(Order)], ["MenuItem", MenuItem], ["OrderStatus", OrderStatus], ["Bid", Bid], ["Person", Person], ["Auction", Auction],
  ["effect filter", Schema.Struct({ s: Schema.String.pipe(Schema.filter((x) => x.startsWith("store-"))) })],
  ["effect NumberFromString", Schema.Struct({ s: Schema.NumberFromString })],
  ["zod", z.object({ orderId: z.string(), qty: z.int().min(1), unitPrice: z.number().min(0), type: z.literal("order"), k: z.enum(["a", "b"]) })],
  ["zod refine", z.object({ s: z.string().refine((x) => x.startsWith("store-")) })],
  ["zod transform", z.object({ s: z.string().transform((x) => x.length) })],
  ["zod async", z.object({ s: z.string().refine(async (x) => x.length > 0) })],
  ["valibot", v.object({ a: v.string(), n: v.pipe(v.number(), v.integer(), v.minValue(1)) })],
  ["valibot std json", toStandardJsonSchema(v.object({ a: v.string(), n: v.pipe(v.number(), v.integer(), v.minValue(1)) }))],
  ["arktype", type({ a: "string", n: "number.integer > 0" })],
  ["arktype narrow", type({ s: type("string").narrow((x) => x.startsWith("store-")) })],
];
for (const [name, s] of cases) {
  try { const d = SchemaDecoder.of(`source "${name}"`, s); console.log(name.padEnd(24), d.vendor, d.fastPath ? "FAST" : "validate"); }
  catch (e) { console.log(name.padEnd(24), "THROWS", (e as Error).message); }
}
const d = SchemaDecoder.of('source "orders"', Order);
console.log(d.decode({ orderId: "o", store: "s", item: "i", qty: "2", unitPrice: 1, ts: 1 }));
console.log(SchemaDecoder.of('source "z"', cases[9]![1]).decode({ orderId: 1 }));
