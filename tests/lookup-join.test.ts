/**
 * Joining a stream with a lookup table (a KV bucket kept in memory): inner joins drop events
 * without a match, left joins keep them; a table's schema may be any Standard Schema (here effect
 * and zod); a table value that does not match it is left out and reported with the schema's
 * issues; a missing bucket is a clear error.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Schema } from "effect";
import { z } from "zod";
import { StreamError } from "../src/core/errors.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

const Sale = Schema.Struct({ sku: Schema.String, qty: Schema.Number });
const Product = Schema.Struct({ brand: Schema.String });
const ZodProduct = z.object({ brand: z.string() });
/** Each kind of join, with the table's schema in a library of its own, and how it reports `{ label }`. */
const joins = [
  { kind: "inner", schema: Product, invalid: "brand: is missing" },
  { kind: "left", schema: ZodProduct, invalid: "brand: Invalid input: expected string, received undefined" },
] as const;

function sales(id: string, kind: "inner" | "left", schema: typeof Product | typeof ZodProduct) {
  const p = pipeline(id, { partitions: 2 });
  const products = p.lookup("products", { bucket: "products", schema });
  const sold = p.source("sales", { stream: "sales", schema: Sale });
  const joined = kind === "inner"
    ? sold.join("with-product", products, "sku", (s, m) => ({ ...s, brand: m.brand }))
    : sold.join("with-product", products, "sku", (s, m) => ({ ...s, brand: m?.brand ?? "unknown" }), { kind: "left" });
  joined.keyBy("by-brand", "brand").aggregate("units", (a) => ({ units: a.sum("qty") })).toTable(`${id}_units`);
  return p;
}

describe("lookup joins", () => {
  const nats = useNatsServer();

  it("inner drops unmatched events, left keeps them; invalid table values are reported", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const kv = await new Kvm(nc).create("products");
    await kv.put("a1", JSON.stringify({ brand: "acme" }));
    await kv.put("a2", JSON.stringify({ brand: "acme" }));
    await kv.put("b1", JSON.stringify({ brand: "bolt" }));
    await kv.put("bad", JSON.stringify({ label: "no brand" }));
    await (await jetstreamManager(nc)).streams.add({ name: "sales", subjects: ["sales"] });
    const js = jetstream(nc);
    const skus = ["a1", "a2", "b1", "zz", "bad"];
    for (let i = 0; i < 500; i++) await js.publish("sales", JSON.stringify({ sku: skus[i % 5], qty: 1 + (i % 3) }));
    const qty = (pick: (sku: string) => boolean) =>
      Array.from({ length: 500 }, (_, i) => ({ sku: skus[i % 5]!, qty: 1 + (i % 3) })).filter((s) => pick(s.sku)).reduce(
        (n, s) => n + s.qty,
        0,
      );

    for (const { kind, schema, invalid } of joins) {
      const log: { event: string; fields: Record<string, unknown> }[] = [];
      const worker = await Worker.start(nc, sales(kind, kind, schema), {
        checkpointMs: 50,
        log: (event, fields) => log.push({ event, fields }),
      });
      await waitFor(() => worker.committedPosition("sales") >= 500, { timeoutMs: 20_000, message: "caught up" });
      await worker.stop();
      const rows = new Map((await readTable<{ key: string; units: number }>(nc, `${kind}_units`)).map((r) => [r.key, r.units]));
      const expected = new Map([
        ["acme", qty((s) => s === "a1" || s === "a2")],
        ["bolt", qty((s) => s === "b1")],
        ...(kind === "left" ? ([["unknown", qty((s) => s === "zz" || s === "bad")]] as const) : []),
      ]);
      expect(rows).toEqual(expected);
      expect(log.find((l) => l.event === "lookup-value-invalid")?.fields).toEqual({
        lookup: "products",
        bucket: "products",
        key: "bad",
        reason: `does not match the schema of lookup table "products": ${invalid}`,
      });
    }
  });

  it("fails clearly when the lookup bucket is missing", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    const p = pipeline("no-bucket");
    const missing = p.lookup("nope", { bucket: "nope", schema: Product });
    p.source("sales", { stream: "sales", schema: Sale }).join("j", missing, "sku", (s, m) => ({ ...s, ...m })).toStream("out", {
      stream: "nope_out",
    });
    await expect(Worker.start(nc, p)).rejects.toThrow(StreamError);
    await expect(Worker.start(nc, p)).rejects.toMatchObject({
      message: expect.stringMatching(/lookup table's KV bucket "nope" does not exist/),
    });
  });
});
