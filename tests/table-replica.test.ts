/**
 * The replica's pure core, without a server: bucket entries in, rows and row changes out. Its rows
 * always equal what `rowsOf` (the batch reader of src/state/table.ts) makes of the same entries,
 * whatever the sequence of page writes, layout changes and deletes.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Key } from "../src/core/partition.ts";
import { ReplicaState } from "../src/serve/replica.ts";
import { inSlices, manualClock, systemClock } from "../src/core/clock.ts";
import { rowsOf } from "../src/state/table.ts";
import {
  decodePage,
  decodePageFrom,
  encodePage,
  indexKey,
  pageKey,
  type PageLines,
  pageRow,
  pageRowJson,
  sameRow,
} from "../src/state/table-page.ts";

const encoder = new TextEncoder();
const index = (chunkBits: number) => encoder.encode(JSON.stringify({ chunkBits }));
const page = (checkpoint: number, rows: [string, unknown][]) => encodePage({ at: checkpoint * 1000, checkpoint, rows });
const none: Uint8Array = new Uint8Array();
/** Apply an entry; the row changes it made, from the state's change log. */
const applied = (state: ReplicaState, ...entry: Parameters<ReplicaState["apply"]>) => {
  const count = state.apply(...entry);
  return Array.from({ length: count }, (_, i) => state.changes.change(state.changes.last - count + 1 + i));
};

describe("table replica state", () => {
  it("applies pages of the current layout only, and reports what changed", () => {
    const state = new ReplicaState();
    state.apply("meta", "PUT", encoder.encode(JSON.stringify({ step: "s", partitions: 2 })), 1);
    expect(state.apply(pageKey(0, 0, 0), "PUT", page(1, [["a", { n: 1 }], ["b", { n: 2 }]]), 2)).toBe(0);
    const first = applied(state, indexKey(0), "PUT", index(0), 3);
    expect(first.map((c) => [c.op, c.key])).toEqual([
      ["upsert", "a"],
      ["upsert", "b"],
    ]);
    expect(state.reflectsPartition(0)).toEqual({ partition: 0, checkpoint: 1, at: 1000, lastUpdate: 3 });

    const second = applied(state, pageKey(0, 0, 0), "PUT", page(2, [["a", { n: 1 }], ["c", { n: 3 }]]), 4);
    expect(second).toEqual([
      { op: "upsert", key: "c", row: { n: 3 }, partition: 0, checkpoint: 2, at: 2000 },
      { op: "delete", key: "b", partition: 0, checkpoint: 2, at: 2000 },
    ]);
    expect(state.rows()).toEqual([{ n: 1 }, { n: 3 }]);

    // A finer layout: the keys move to other pages; only a changed row is reported.
    state.apply(pageKey(0, 1, 0), "PUT", page(3, [["a", { n: 1 }]]), 5);
    state.apply(pageKey(0, 1, 1), "PUT", page(3, [["c", { n: 4 }]]), 6);
    expect(state.rows()).toEqual([{ n: 1 }, { n: 3 }]);
    const relayout = applied(state, indexKey(0), "PUT", index(1), 7);
    expect(relayout.map((c) => [c.op, c.key, c.row])).toEqual([["upsert", "c", { n: 4 }]]);
    expect(state.reflects()).toMatchObject({ checkpoint: 3, at: 3000, lastUpdate: 7 });
    expect(state.reflects().partitions[1]).toEqual({ partition: 1, checkpoint: null, at: null, lastUpdate: null });

    expect(applied(state, pageKey(0, 1, 1), "DEL", none, 8).map((c) => [c.op, c.key])).toEqual([["delete", "c"]]);
    expect(state.rows()).toEqual([{ n: 1 }]);
  });

  it("reads ranges and pages in key order", () => {
    const state = new ReplicaState();
    const keys = ["d", "a", "c", "e", "b", "f"];
    state.apply(pageKey(0, 0, 0), "PUT", page(1, keys.map((k) => [k, { k }])), 1);
    state.apply(indexKey(0), "PUT", index(0), 1);
    expect(state.range({ limit: 100 }).rows.map((r) => r.key)).toEqual(["a", "b", "c", "d", "e", "f"]);
    const first = state.range({ from: "b", to: "f", limit: 2 });
    expect(first.rows.map((r) => r.key)).toEqual(["b", "c"]);
    expect(first.next).toBe("c");
    const second = state.range({ from: "b", to: "f", after: first.next!, limit: 2 });
    expect(second.rows.map((r) => r.key)).toEqual(["d", "e"]);
    expect(second.next).toBeUndefined();
    expect(state.range({ from: "bb", limit: 1 }).rows.map((r) => r.key)).toEqual(["c"]);
    expect(state.range({ from: "x", limit: 5 })).toEqual({ rows: [], next: undefined });
  });

  it("holds the rows rowsOf reads from the same entries, under any sequence of writes", () => {
    const op = fc.record({
      partition: fc.integer({ min: 0, max: 2 }),
      bits: fc.integer({ min: 0, max: 2 }),
      chunk: fc.integer({ min: 0, max: 3 }),
      kind: fc.constantFrom("page", "page", "page", "rewrite", "rewrite", "index", "delete"),
      keys: fc.uniqueArray(fc.integer({ min: 0, max: 150 }), { maxLength: 90 }),
      value: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const state = new ReplicaState();
        const entries = new Map<string, Uint8Array>();
        const written = new Map<string, [string, unknown][]>();
        const followed = new Map<string, unknown>(); // the rows as the reported changes tell them
        const layouts = new Map<number, number>(); // each partition's layout, as its last index says
        let checkpoint = 0;
        for (const o of ops) {
          const chunk = o.chunk % 2 ** o.bits;
          // A key lives in one partition and, within a layout, one chunk: derive both from it.
          let rows: [string, unknown][] = o.keys
            .filter((k) => k % 3 === o.partition && (k >> 2) % 2 ** o.bits === chunk)
            .map((k) => [`k${k}`, { k, v: o.value }]);
          // A page rewritten with the same keys in the same order, some rows changed.
          const previous = written.get(pageKey(o.partition, o.bits, chunk));
          if (o.kind === "rewrite" && previous) {
            rows = previous.map(([key, row], i) => [key, i % 2 === 0 ? { ...(row as object), v: o.value } : row]);
          }
          let key: string;
          let value = none;
          let operation: "PUT" | "DEL" = "PUT";
          if (o.kind === "index") {
            key = indexKey(o.partition);
            value = index(o.bits);
          } else {
            key = pageKey(o.partition, o.bits, chunk);
            if (o.kind === "delete") operation = "DEL";
            else value = page(++checkpoint, rows);
          }
          if (operation === "PUT") entries.set(key, value);
          else entries.delete(key);
          if (o.kind !== "index") written.set(key, rows);
          for (const change of applied(state, key, operation, value, checkpoint)) {
            if (change.op === "upsert") followed.set(String(change.key), change.row);
            else followed.delete(String(change.key));
          }
          // The replica drops pages of replaced layouts; the server purges them once the layout
          // changes (an index written again for the same layout purges nothing): mirror that.
          if (o.kind === "index" && layouts.get(o.partition) !== o.bits) {
            for (const k of [...entries.keys()]) {
              if (k.startsWith(`p.${o.partition}.`) && !k.startsWith(`p.${o.partition}.${o.bits}.`)) entries.delete(k);
            }
          }
          if (o.kind === "index") layouts.set(o.partition, o.bits);
          const expected = rowsOf<{ k: number }>(entries).sort((a, b) => (`k${a.k}` < `k${b.k}` ? -1 : 1));
          expect(state.rows()).toEqual(expected);
          expect(state.size).toBe(expected.length);
          expect([...followed].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, row]) => row)).toEqual(expected);
        }
      }),
      {
        numRuns: 200,
        examples: [[[
          { partition: 1, bits: 0, chunk: 0, kind: "index", keys: [], value: 0 },
          { partition: 1, bits: 1, chunk: 0, kind: "page", keys: [43], value: 0 },
          { partition: 1, bits: 0, chunk: 0, kind: "index", keys: [], value: 0 },
          { partition: 1, bits: 1, chunk: 0, kind: "index", keys: [], value: 0 },
        ]]],
      },
    );
  });

  it("lets the event loop turn while it applies a long run of buffered entries", async () => {
    // An async iterator's buffered items arrive in microtasks only; a timer due meanwhile runs
    // between slices with inSlices, and only after the last item without it.
    async function* buffered() {
      for (let i = 0; i < 400; i++) yield i;
    }
    const timerRanAfter = async (clock: typeof systemClock) => {
      let applied = 0;
      let ranAfter: number | undefined;
      setTimeout(() => (ranAfter = applied), 0);
      for await (const _ of inSlices(buffered(), clock, 1)) {
        const until = performance.now() + 0.05; // applying an entry takes a while
        while (performance.now() < until);
        applied++;
      }
      return { applied, ranAfter };
    };
    const sliced = await timerRanAfter(systemClock);
    expect(sliced.applied).toBe(400);
    expect(sliced.ranAfter).toBeLessThan(400);
    const frozen = await timerRanAfter(manualClock(0)); // time never moves: one slice
    expect(frozen.ranAfter).toBeUndefined();
  });

  it("decodes a page from its previous version as a whole parse would, rows parsed when read", () => {
    // Keys and rows with what could confuse a reader of lines: newlines, "],[", quotes, unicode.
    const key = fc.oneof(fc.string(), fc.constantFrom("a\nb", '"],\n[', "é ☕", "]}", '\\"'), fc.integer());
    const row = fc.oneof(fc.jsonValue(), fc.record({ note: fc.constantFrom("x\n]}", "\u2028"), n: fc.integer() }));
    const rows = fc.uniqueArray(fc.tuple(key, row), { selector: ([k]) => String(k), maxLength: 30 });
    const rowsOfPage = (p: PageLines) => p.keys.map((k, r) => [k, pageRow(p, r)]);
    fc.assert(
      fc.property(rows, rows, fc.integer({ min: 0, max: 29 }), (first, second, changed) => {
        // The second version: either other rows, or the first's with one row changed.
        const next = changed % 2 === 0
          ? second
          : first.map(([k, r], i) => [k, i === changed >> 1 ? { changed: r } : r] as [Key, unknown]);
        const before = decodePageFrom(encodePage({ at: 1, checkpoint: 1, rows: first }));
        const bytes = encodePage({ at: 2, checkpoint: 2, rows: next });
        const after = decodePageFrom(bytes, before);
        const whole = decodePage(bytes);
        expect({ at: after.at, checkpoint: after.checkpoint, rows: rowsOfPage(after) }).toEqual(whole);
        expect(whole.rows).toEqual(JSON.parse(JSON.stringify(next)));
        after.keys.forEach((_, r) => expect(pageRowJson(after, r)).toBe(JSON.stringify(whole.rows[r]![1])));
        next.forEach(([k], i) => {
          const same = first[i]?.[0] === k && JSON.stringify(first[i]) === JSON.stringify(next[i]);
          // A row is the same exactly when it was written the same; a key written the same is reused.
          if (i < first.length) expect(sameRow(before, i, after, i)).toBe(same);
          if (typeof k === "string" && first[i]?.[0] === k) expect(after.keys[i]).toBe(before.keys[i]);
        });
      }),
      { numRuns: 300 },
    );
    // A page written in one line (before pages had row lines) is read whole.
    const legacy = encoder.encode(JSON.stringify({ at: 3, checkpoint: 3, rows: [["a", { n: 1 }]] }));
    const read = decodePageFrom(legacy, decodePageFrom(page(2, [["a", { n: 0 }]])));
    expect({ at: read.at, checkpoint: read.checkpoint, rows: rowsOfPage(read) }).toEqual({
      at: 3,
      checkpoint: 3,
      rows: [["a", { n: 1 }]],
    });
  });
});
