/**
 * Decoding source events: a struct of plain fields takes a fast check instead of effect's
 * interpreter, and must give exactly what effect gives (the struct's fields in its order, the
 * others dropped; an event with exactly those is taken as it is) and, for an event that does not match, the same message, because effect then
 * decodes it.
 */
import { Either, Schema } from "effect";
import { describe, expect, it } from "vitest";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { compile } from "../src/runtime/plan.ts";

const enc = new TextEncoder();

const Order = Schema.Struct({
  type: Schema.Literal("order"),
  id: Schema.Int,
  price: Schema.Number,
  item: Schema.String,
  paid: Schema.Boolean,
  qty: Schema.Int.pipe(Schema.positive()),
});

function decoderOf(schema: Schema.Schema<any, any>) {
  const p = pipeline("decoding");
  p.source("orders", { stream: "orders", schema }).toStream("out", { stream: "out" });
  const source = compile(p).sources[0]!;
  const effect = Schema.decodeUnknownEither(schema, { errors: "first" });
  return { decode: (json: string) => source.decode(enc.encode(json)), effect: (json: string) => effect(JSON.parse(json)) };
}

describe("source decoding", () => {
  const { decode, effect } = decoderOf(Order);

  it("gives what effect gives for a matching event: the struct's fields, in order, no others", () => {
    const json = '{"extra":1,"qty":2,"paid":false,"item":"latte","price":3.5,"id":7,"type":"order"}';
    const decoded = decode(json);
    expect(Either.isRight(decoded)).toBe(true);
    const value = Either.getOrThrow(decoded);
    expect(value).toEqual(Either.getOrThrow(effect(json)));
    expect(Object.keys(value as object)).toEqual(["type", "id", "price", "item", "paid", "qty"]);
  });

  it("gives the same for an event with exactly the struct's fields, in its order", () => {
    const json = '{"type":"order","id":7,"price":3.5,"item":"latte","paid":false,"qty":2}';
    const value = Either.getOrThrow(decode(json));
    expect(value).toEqual(Either.getOrThrow(effect(json)));
    expect(Object.keys(value as object)).toEqual(["type", "id", "price", "item", "paid", "qty"]);
  });

  it.each([
    ['{"type":"refund","id":7,"price":3.5,"item":"latte","paid":false,"qty":2}', "a wrong literal"],
    ['{"type":"order","id":7.5,"price":3.5,"item":"latte","paid":false,"qty":2}', "a number that is not an Int"],
    ['{"type":"order","id":7,"price":3.5,"item":"latte","paid":false,"qty":0}', "a refinement of a refinement"],
    ['{"type":"order","id":7,"price":"3.5","item":"latte","paid":false,"qty":2}', "a string for a number"],
    ['{"type":"order","id":7,"price":3.5,"paid":false,"qty":2}', "a missing field"],
    ['{"type":"order","id":7,"price":3.5,"item":"latte","paid":null,"qty":2}', "null for a boolean"],
    ["[1,2]", "an array"],
    ["null", "null"],
  ])("reports effect's reason for %s (%s)", (json) => {
    const decoded = decode(json);
    expect(Either.isLeft(decoded)).toBe(true);
    expect(Either.isLeft(effect(json))).toBe(true);
    expect(Either.getLeft(decoded).pipe((l) => l._tag === "Some" && l.value)).toContain(
      'does not match the schema of source "orders"',
    );
  });

  it("leaves other schemas to effect: transformations and optional fields decode as effect decodes them", () => {
    const other = decoderOf(Schema.Struct({ at: Schema.DateFromString, note: Schema.optional(Schema.String) }));
    const json = '{"at":"2024-01-01T00:00:00Z","x":1}';
    const decoded = Either.getOrThrow(other.decode(json)) as { at: Date };
    expect(decoded.at).toBeInstanceOf(Date);
    expect(decoded).toEqual(Either.getOrThrow(other.effect(json)));
  });
});
