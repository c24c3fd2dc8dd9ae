/**
 * Decoding source events with any Standard Schema (effect, zod, valibot, arktype): a flat object
 * of plain fields takes the fast path compiled from the schema's JSON Schema, and must give
 * exactly what the schema's own `validate` gives, for any value (fast-check), rejections
 * included; a rejected event's reason is the schema's issues. Schemas the fast path cannot vouch
 * for (transforms, checks the JSON Schema leaves out) are decoded by `validate`; a schema that
 * validates asynchronously is a ConfigError, or a rejected event when only an event shows it.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { toStandardJsonSchema } from "@valibot/to-json-schema";
import { type } from "arktype";
import { Either, Schema } from "effect";
import fc from "fast-check";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError } from "../src/core/errors.ts";
import { type EventSchema, formatIssues, SchemaDecoder } from "../src/core/schema.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { compile } from "../src/runtime/plan.ts";

const enc = new TextEncoder();

/** The same order, in each library: a literal, integers (one bounded), a number, a string, a boolean, an enum. */
const EffectOrder = Schema.Struct({
  type: Schema.Literal("order"),
  id: Schema.Int,
  price: Schema.Number.pipe(Schema.greaterThanOrEqualTo(0)),
  item: Schema.String,
  paid: Schema.Boolean,
  qty: Schema.Int.pipe(Schema.positive()),
  size: Schema.Literal("s", "m", "l"),
});
const ZodOrder = z.object({
  type: z.literal("order"),
  id: z.int(),
  price: z.number().min(0),
  item: z.string(),
  paid: z.boolean(),
  qty: z.int().positive(),
  size: z.enum(["s", "m", "l"]),
});
const valibotOrder = v.object({
  type: v.literal("order"),
  id: v.pipe(v.number(), v.integer()),
  price: v.pipe(v.number(), v.minValue(0)),
  item: v.string(),
  paid: v.boolean(),
  qty: v.pipe(v.number(), v.integer(), v.gtValue(0)),
  size: v.picklist(["s", "m", "l"]),
});
const ArkOrder = type({
  type: "'order'",
  id: "number.integer",
  price: "number >= 0",
  item: "string",
  paid: "boolean",
  qty: "number.integer > 0",
  size: "'s' | 'm' | 'l'",
});
const fields = ["type", "id", "price", "item", "paid", "qty", "size"];

/** Each schema, as a source takes it, and the `validate` its decoding must agree with. */
const schemas: [string, EventSchema<any>, StandardSchemaV1<unknown, unknown>][] = [
  ["effect (bare)", EffectOrder, Schema.standardSchemaV1(EffectOrder)],
  ["effect (standardSchemaV1)", Schema.standardSchemaV1(EffectOrder), Schema.standardSchemaV1(EffectOrder)],
  ["zod", ZodOrder, ZodOrder],
  ["valibot (toStandardJsonSchema)", toStandardJsonSchema(valibotOrder), valibotOrder],
  ["valibot (bare: no JSON Schema, no fast path)", valibotOrder, valibotOrder],
  ["arktype", ArkOrder, ArkOrder],
];

function sourceOf(schema: EventSchema<any>) {
  const p = pipeline("decoding");
  p.source("orders", { stream: "orders", schema }).toStream("out", { stream: "out" });
  const source = compile(p).sources[0]!;
  const step = p.step("orders");
  return {
    decode: (json: string) => source.decode(enc.encode(json)),
    decoder: (step.kind === "source" ? step.schema : undefined)!,
  };
}

function validateSync(schema: StandardSchemaV1<unknown, unknown>, value: unknown): StandardSchemaV1.Result<unknown> {
  const result = schema["~standard"].validate(value);
  if (result instanceof Promise) throw new Error("async");
  return result;
}

/** Values near an order: mostly right, often one field wrong, sometimes keys missing, extra, reordered. */
const fieldValue: Record<string, fc.Arbitrary<unknown>> = {
  type: fc.constantFrom("order", "refund"),
  id: fc.oneof(fc.integer(), fc.constantFrom(0, -0, 2 ** 53, 1e21, -(2 ** 60), 7.5)),
  price: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0, -0, 3.5, "3.5")),
  item: fc.oneof(fc.string(), fc.constant(null)),
  paid: fc.oneof(fc.boolean(), fc.constantFrom(0, "true")),
  qty: fc.oneof(fc.integer({ min: -3, max: 1_000 }), fc.constantFrom(0.5, 1e21, Number.MAX_SAFE_INTEGER)),
  size: fc.constantFrom("s", "m", "l", "xl", ""),
};
const valid: Record<string, fc.Arbitrary<unknown>> = {
  type: fc.constant("order"),
  id: fc.integer(),
  price: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
  item: fc.string(),
  paid: fc.boolean(),
  qty: fc.integer({ min: 1 }),
  size: fc.constantFrom("s", "m", "l"),
};
const nearOrder: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      Object.fromEntries(fields.map((f) => [f, fc.oneof({ weight: 9, arbitrary: valid[f]! }, fieldValue[f]!)])),
    ),
  },
  { weight: 2, arbitrary: fc.record(fieldValue) },
  { weight: 1, arbitrary: fc.record(valid).map((o) => Object.fromEntries(Object.entries(o).reverse())) },
  // arktype's JSON Schema lists the fields sorted: the order its fast path takes.
  { weight: 1, arbitrary: fc.record(valid).map((o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1))) },
  { weight: 1, arbitrary: fc.record(valid, { requiredKeys: ["type", "id", "qty"] }) },
  { weight: 1, arbitrary: fc.tuple(fc.record(valid), fc.string(), fc.jsonValue()).map(([o, k, x]) => ({ ...o, [k]: x })) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

describe("source decoding", () => {
  it.each(schemas)("%s: decoding gives exactly what validate gives, for any value", (_, schema, reference) => {
    const { decoder } = sourceOf(schema);
    expect(decoder.fastPath !== undefined).toBe(!_.includes("no fast path"));
    let fast = 0;
    fc.assert(
      fc.property(nearOrder, (value) => {
        const expected = validateSync(reference, value);
        const hit = decoder.fastPath?.check(value);
        if (hit !== undefined) fast++;
        const decoded = decoder.decode(value);
        if (expected.issues) {
          expect(hit).toBeUndefined();
          expect(Either.getLeft(decoded)).toEqual(
            Either.getLeft(Either.left(`does not match the schema of source "orders": ${formatIssues(expected.issues)}`)),
          );
        } else {
          const got = Either.getOrThrow(decoded);
          expect(got).toStrictEqual(expected.value);
          expect(Object.keys(got as object)).toEqual(Object.keys(expected.value as object));
        }
      }),
      { numRuns: 2_000 },
    );
    // The fast path answers a good share of them (arktype's: only those with the fields sorted);
    // without one, validate decoded them all.
    if (decoder.fastPath) expect(fast).toBeGreaterThan(_ === "arktype" ? 50 : 250);
    else expect(fast).toBe(0);
  });

  it("takes an event with exactly the schema's fields, in its order, as it is", () => {
    const { decode, decoder } = sourceOf(EffectOrder);
    const json = '{"type":"order","id":7,"price":3.5,"item":"latte","paid":false,"qty":2,"size":"m"}';
    const parsed = JSON.parse(json);
    expect(decoder.fastPath?.check(parsed)).toBe(parsed);
    expect(Either.getOrThrow(decode(json))).toEqual(parsed);
  });

  it("gives what the schema gives for an event with other fields: its fields, in its order, no others", () => {
    const json = '{"extra":1,"size":"m","qty":2,"paid":false,"item":"latte","price":3.5,"id":7,"type":"order"}';
    for (const schema of [EffectOrder, ZodOrder]) {
      const value = Either.getOrThrow(sourceOf(schema).decode(json));
      expect(Object.keys(value as object)).toEqual(["type", "id", "price", "item", "paid", "qty", "size"]);
    }
  });

  it.each([
    [EffectOrder, "qty: Expected a positive number, actual 0"],
    [ZodOrder, "qty: Too small: expected number to be >0"],
    [valibotOrder, "qty: Invalid value: Expected >0 but received 0"],
    [ArkOrder, "qty must be positive (was 0)"],
  ])("rejects with the schema's own message (%#)", (schema, message) => {
    const decoded = sourceOf(schema).decode('{"type":"order","id":7,"price":3.5,"item":"latte","paid":false,"qty":0,"size":"m"}');
    expect(Either.getLeft(decoded)).toEqual(
      Either.getLeft(Either.left(`does not match the schema of source "orders": ${message}`)),
    );
  });

  it("reports malformed JSON as such", () => {
    expect(Either.getLeft(sourceOf(ZodOrder).decode('{"type":'))).toMatchObject({
      _tag: "Some",
      value: expect.stringMatching(/^not JSON: /),
    });
  });

  it("leaves transformations and optional fields to validate", () => {
    const Other = Schema.Struct({ at: Schema.DateFromString, note: Schema.optional(Schema.String) });
    const other = sourceOf(Other);
    expect(other.decoder.fastPath).toBeUndefined();
    const decoded = Either.getOrThrow(other.decode('{"at":"2024-01-01T00:00:00Z","x":1}')) as { at: Date };
    expect(decoded.at).toBeInstanceOf(Date);
    const zod = sourceOf(z.object({ n: z.string().transform((s) => s.length) }));
    expect(zod.decoder.fastPath).toBeUndefined();
    expect(Either.getOrThrow(zod.decode('{"n":"abc"}'))).toEqual({ n: 3 });
  });

  it.each(
    [
      ["effect filter", Schema.Struct({ store: Schema.String.pipe(Schema.filter((s) => s.startsWith("store-"))) })],
      ["zod refine", z.object({ store: z.string().refine((s) => s.startsWith("store-")) })],
      ["arktype narrow", type({ store: type("string").narrow((s) => s.startsWith("store-")) })],
    ] as const,
  )("does not trust a JSON Schema that leaves a check out (%s): validate decides", (_, schema) => {
    const { decode, decoder } = sourceOf(schema);
    expect(decoder.fastPath).toBeUndefined();
    expect(Either.isLeft(decode('{"store":"shop-1"}'))).toBe(true);
    expect(Either.getOrThrow(decode('{"store":"store-1"}'))).toEqual({ store: "store-1" });
  });

  it("refuses, when the pipeline is defined, a schema whose validate returns a Promise", () => {
    const p = pipeline("async");
    const schema = z.object({ store: z.string().refine(async (s) => s.length > 0) });
    expect(() => p.source("orders", { stream: "orders", schema })).toThrow(ConfigError);
    expect(() => p.source("orders2", { stream: "orders", schema })).toThrow(/source "orders2" validates asynchronously/);
  });

  it("rejects an event its schema validates asynchronously when only the event shows it", async () => {
    let pending: Promise<unknown> | undefined;
    const schema: StandardSchemaV1<unknown, { n: number }> = {
      "~standard": {
        version: 1,
        vendor: "hand-written",
        validate: (value) =>
          (value as { n?: unknown }).n === "later"
            ? (pending = Promise.resolve({ value: { n: 1 } }))
            : typeof (value as { n?: unknown }).n === "number"
            ? { value: value as { n: number } }
            : { issues: [{ message: "Expected a number", path: ["n"] }] },
      },
    };
    const { decode } = sourceOf(schema as EventSchema<any>);
    expect(Either.getOrThrow(decode('{"n":1}'))).toEqual({ n: 1 });
    expect(Either.getLeft(decode('{"n":"x"}'))).toEqual(
      Either.getLeft(Either.left('does not match the schema of source "orders": n: Expected a number')),
    );
    expect(Either.getLeft(decode('{"n":"later"}'))).toMatchObject({ value: expect.stringMatching(/validates asynchronously/) });
    await pending;
  });

  it("refuses what is not a schema", () => {
    expect(() => SchemaDecoder.of('source "x"', { parse: () => 1 } as unknown as EventSchema<any>)).toThrow(
      /neither a Standard Schema v1 nor an effect Schema/,
    );
  });
});
