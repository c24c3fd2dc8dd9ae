/**
 * Bad input loses nothing: malformed JSON, schema violations and events on which a user function
 * throws go to the dead-letter stream with the original bytes, source sequence and reason (for a
 * schema violation, the schema's own issues: effect, zod, valibot), while every good event is counted.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import * as v from "valibot";
import { z } from "zod";
import type { EventSchema } from "../src/core/schema.ts";
import { readDeadLetters } from "../src/log/side-outputs.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

/** A reading, in each library, and how it says that `value: "high"` is not one. */
const readings: [string, EventSchema<{ readonly sensor: string; readonly value: number }>, string][] = [
  ["effect", Schema.Struct({ sensor: Schema.String, value: Schema.Number }), 'value: Expected number, actual "high"'],
  ["zod", z.object({ sensor: z.string(), value: z.number() }), "value: Invalid input: expected number, received string"],
  ["valibot", v.object({ sensor: v.string(), value: v.number() }), 'value: Invalid type: Expected number but received "high"'],
];

describe("dead letters", () => {
  const nats = useNatsServer();

  it.each(readings)(
    "routes malformed, schema-violating and throwing events to the dead-letter stream and counts the rest (%s)",
    async (name, Reading, mismatch) => {
      const nc = await nats.connect();
      const jsm = await jetstreamManager(nc);
      const stream = `readings-${name}`;
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });

      const p = pipeline(`sensors-${name}`, { partitions: 3 });
      p.source("readings", { stream, schema: Reading })
        .map("checked", (r) => {
          if (r.value < 0) throw new Error(`negative reading ${r.value}`);
          return r;
        })
        .keyBy("by-sensor", "sensor")
        .aggregate("totals", (a) => ({
          n: a.count(),
          total: a.sum("value"),
          // A user fold that throws on one specific value.
          checked: a.reduce(0, (acc, r) => {
            if (r.value === 13) throw new Error("unlucky value");
            return acc + 1;
          }),
        }))
        .toTable(`sensor_totals_${name}`);

      const encoder = new TextEncoder();
      const js = jetstream(nc);
      const expected = new Map<string, { n: number; total: number }>();
      const bad = new Map<number, RegExp | string>();
      for (let i = 1; i <= 600; i++) {
        let body: string;
        const sensor = `s${i % 7}`;
        if (i % 50 === 0) {
          body = `{"sensor": "${sensor}", "value": `; // truncated JSON
          bad.set(i, /not JSON/);
        } else if (i % 50 === 10) {
          body = JSON.stringify({ sensor, value: "high" });
          bad.set(i, `does not match the schema of source "readings": ${mismatch}`);
        } else if (i % 50 === 20) {
          body = JSON.stringify({ sensor, value: -1 });
          bad.set(i, /map "checked" threw: negative reading -1/);
        } else if (i % 50 === 30) {
          body = JSON.stringify({ sensor, value: 13 });
          bad.set(i, /step "totals" threw.*unlucky value/);
        } else {
          const value = i % 11;
          body = JSON.stringify({ sensor, value });
          const row = expected.get(sensor) ?? { n: 0, total: 0 };
          row.n++;
          row.total += value;
          expected.set(sensor, row);
        }
        const ack = await js.publish(`${stream}.${sensor}`, encoder.encode(body));
        expect(ack.seq).toBe(i);
      }

      const worker = await Worker.start(nc, p, { checkpointMs: 50 });
      await waitFor(() => worker.committedPosition("readings") >= 600, { timeoutMs: 20_000, message: "all readings processed" });
      await worker.stop();

      const rows = await readTable<{ key: string; n: number; total: number; checked: number }>(nc, `sensor_totals_${name}`);
      expect(new Map(rows.map((r) => [r.key, { n: r.n, total: r.total }]))).toEqual(expected);
      for (const r of rows) expect(r.checked).toBe(r.n);

      const letters = await readDeadLetters(nc, `sensors-${name}`);
      expect(letters.map((l) => l.sourceSeq).sort((a, b) => a - b)).toEqual([...bad.keys()]);
      for (const letter of letters) {
        const reason = bad.get(letter.sourceSeq)!;
        if (typeof reason === "string") expect(letter.reason).toBe(reason);
        else expect(letter.reason).toMatch(reason);
        expect(letter.sourceStream).toBe(stream);
      }
      // Decoding failures keep the original bytes.
      const truncated = letters.find((l) => l.sourceSeq === 50)!;
      expect(new TextDecoder().decode(truncated.data)).toBe('{"sensor": "s1", "value": ');
      // The counters: source-stage dead letters in the worker, operator ones in the checkpoint.
      expect(worker.sourceDeadLetters).toBe(36);
      expect(worker.status().reduce((n, a) => n + a.deadLetters, 0)).toBe(12);
    },
  );
});
