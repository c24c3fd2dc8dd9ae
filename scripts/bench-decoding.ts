/**
 * How fast are source events decoded? The coffee-shop Order events (bytes, as they come off the
 * log), decoded side by side in one run, interleaved, `rounds` times:
 *   - fast path: Eddy's source decoding (JSON.parse + the check compiled from the JSON Schema);
 *   - no fast path: JSON.parse + the schema's validate (effect's decoding, as Eddy runs it);
 *   - effect standardSchemaV1: JSON.parse + `Schema.standardSchemaV1(Order)["~standard"].validate`;
 *   - effect AST fast path: JSON.parse + the check that walked effect's SchemaAST, which this
 *     replaced (kept here, for comparison only);
 *   - zod, fast path / validate: the same Order as a zod schema;
 *   - JSON.parse alone: the floor.
 * Then the checks alone, on parsed events. Figures: ns per event, medians, and ratios to the AST
 * fast path.
 *
 *   npx tsx scripts/bench-decoding.ts [events=200000] [rounds=3]
 */
import { Either, Option, Schema, SchemaAST } from "effect";
import { z } from "zod";
import { generateOrders, Order } from "../examples/coffee-shop/orders.ts";
import { SchemaDecoder } from "../src/core/schema.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { compile } from "../src/runtime/plan.ts";

const count = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 3);
const enc = new TextEncoder();
const dec = new TextDecoder();
const events = [...generateOrders({ seed: 7, count: 10_000 })].map((o) => enc.encode(JSON.stringify(o)));

const ZodOrder = z.object({
  orderId: z.string(),
  store: z.string(),
  item: z.string(),
  qty: z.int().min(1),
  unitPrice: z.number().min(0),
  ts: z.number(),
});

function sourceOf(schema: typeof Order | typeof ZodOrder) {
  const p = pipeline("bench-decoding");
  p.source("orders", { stream: "orders", schema }).toStream("out", { stream: "out" });
  return compile(p).sources[0]!.decode;
}

/** The effect-AST fast path this replaced (src/runtime/plan.ts `plainStruct`, before). */
function astFastPath(ast: SchemaAST.AST): (json: unknown) => unknown {
  if (ast._tag !== "TypeLiteral") throw new Error("not a struct");
  const field = (a: SchemaAST.AST): (v: unknown) => boolean => {
    switch (a._tag) {
      case "StringKeyword":
        return (v) => typeof v === "string";
      case "NumberKeyword":
        return (v) => typeof v === "number";
      case "Refinement": {
        const from = field(a.from);
        return (v) => from(v) && Option.isNone(a.filter(v, SchemaAST.defaultParseOption, a));
      }
      default:
        throw new Error(`unexpected ${a._tag}`);
    }
  };
  const fields = ast.propertySignatures.map((p) => ({ name: p.name as string, check: field(p.type) }));
  return (json) => {
    if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
    const input = json as Record<string, unknown>;
    let n = 0;
    for (const name in input) {
      if (fields[n]?.name !== name) return undefined;
      n++;
    }
    if (n !== fields.length) return undefined;
    for (const { name, check } of fields) if (!check(input[name])) return undefined;
    return input;
  };
}

const effect = SchemaDecoder.of('source "orders"', Order);
const zod = SchemaDecoder.of('source "orders"', ZodOrder);
if (!effect.fastPath || !zod.fastPath) throw new Error("expected a fast path for Order");
const standard = Schema.standardSchemaV1(Order)["~standard"].validate;
const ast = astFastPath(Order.ast);
const slow = Schema.decodeUnknownEither(Order, { errors: "first" });
const parse = (data: Uint8Array) => JSON.parse(dec.decode(data));

const cases: [string, (data: never) => unknown][] = [
  ["JSON.parse alone", parse],
  ["effect AST fast path (before)", (d) => {
    const json = parse(d);
    return ast(json) ?? slow(json);
  }],
  ["effect, fast path (now)", sourceOf(Order)],
  ["effect, no fast path (validate)", (d) => effect.validate(parse(d))],
  ["effect standardSchemaV1 validate", (d) => standard(parse(d))],
  ["zod, fast path", sourceOf(ZodOrder)],
  ["zod, no fast path (validate)", (d) => zod.validate(parse(d))],
];

// Every case decodes every event to the same order first.
const fastEffect = sourceOf(Order);
for (const e of events) {
  const [a, b] = [Either.getOrThrow(fastEffect(e)), ast(parse(e))];
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error("the fast paths disagree");
}

/**
 * Time every case on the same slices of events, rotating between cases slice by slice (this
 * machine is shared: a burst of other work then lands on all cases alike); medians over slices.
 */
function measure(label: string, list: [string, (event: never) => unknown][], inputs: readonly unknown[]): void {
  const results = new Map<string, number[]>(list.map(([name]) => [name, []]));
  const slices = 20 * rounds;
  const size = Math.ceil(count / 20);
  let sink = 0;
  for (let slice = -2; slice < slices; slice++) { // two slices to warm up
    for (const [name, decode] of list) {
      const from = ((slice + 2) * size) % inputs.length;
      const start = performance.now();
      for (let i = 0; i < size; i++) {
        if ((decode as (e: unknown) => unknown)(inputs[(from + i) % inputs.length]) !== undefined) sink++;
      }
      if (slice >= 0) results.get(name)!.push(((performance.now() - start) * 1e6) / size);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const reference = results.get(list[1]![0])!;
  console.log(
    `\n${label}: ns/event, median over ${slices} slices of ${size} events; ratio to "${
      list[1]![0]
    }" (median of per-slice ratios)`,
  );
  for (const [name, ns] of results) {
    const ratio = median(ns.map((v, i) => v / reference[i]!));
    console.log(`  ${name.padEnd(36)} ${median(ns).toFixed(0).padStart(6)} ns   x${ratio.toFixed(2)}`);
  }
  if (sink < 0) console.log(sink);
}

measure("decode from bytes (JSON.parse included)", cases, events);

// The checks alone, on parsed events (none of them copies or changes an event it takes).
const parsed = events.map(parse);
const effectCheck = effect.fastPath.check;
const zodCheck = zod.fastPath.check;
measure("the check alone, on parsed events", [
  ["nothing (loop overhead)", (o: unknown) => o],
  ["effect AST fast path (before)", (o: unknown) => ast(o)],
  ["effect, fast path (now)", (o: unknown) => effectCheck(o)],
  ["effect, validate", (o: unknown) => effect.validate(o)],
  ["zod, fast path (now)", (o: unknown) => zodCheck(o)],
  ["zod, validate", (o: unknown) => zod.validate(o)],
], parsed);
