/**
 * Joins of two keyed streams (actors/join.ts), each kind against a direct computation over the
 * same events: regular (every pair), interval, window and as-of (temporal), inner and left
 * outer, and the semi window join. Two sources with their own watermarks: the join's is the lower one. A stop and restart
 * in the middle of an interval join changes nothing.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Schema } from "effect";
import { evaluate } from "../src/oracle/batch.ts";
import { type KeyedStream, pipeline } from "../src/pipeline/pipeline.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";

const Ev = Schema.Struct({ id: Schema.String, k: Schema.Number, t: Schema.Number });
type Ev = typeof Ev.Type;
const bound = 500;

function events(prefix: string, count: number, seed: number): Ev[] {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  // 100 ms apart, up to 300 ms out of order: within the 500 ms bound, nothing is late.
  return Array.from(
    { length: count },
    (_, i) => ({ id: `${prefix}${i}`, k: Math.floor(rand() * 8), t: 1_000_000 + i * 100 - Math.floor(rand() * 300) }),
  );
}

async function publish(nc: NatsConnection, stream: string, evs: readonly Ev[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] }).catch(() => undefined);
  const js = jetstream(nc);
  for (let i = 0; i < evs.length; i += 500) {
    await Promise.all(evs.slice(i, i + 500).map((e) => js.publish(`${stream}.e`, JSON.stringify(e))));
  }
}

type Pair = { a: string; b: string | null };
const sorted = (pairs: Pair[]) => pairs.map((p) => `${p.a}/${p.b}`).sort();
const watermarkOf = (evs: readonly Ev[]) => Math.max(...evs.map((e) => e.t)) - bound;

/** A pipeline joining stream `<name>-a` with `<name>-b` by `k`, the pairs to stream `<name>_out`. */
function joined(
  name: string,
  join: (a: KeyedStream<Ev, number>, b: KeyedStream<Ev, number>) => { toStream: (id: string, o: { stream: string }) => void },
  idleTimeoutMs?: number,
) {
  const p = pipeline(name, { partitions: 3 });
  const side = (s: string) =>
    p.source(s, {
      stream: `${name}-${s}`,
      schema: Ev,
      eventTime: (e) => e.t,
      maxOutOfOrderMs: bound,
      ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
    }).keyBy(`${s}-by-k`, "k");
  join(side("a"), side("b")).toStream("out", { stream: `${name}_out` });
  return p;
}

/** Run until every input is read and committed (and, if given, that many outputs are out). */
async function run(nc: NatsConnection, p: ReturnType<typeof joined>, a: Ev[], b: Ev[], outputs?: number): Promise<Pair[]> {
  await publish(nc, `${p.id}-a`, a);
  await publish(nc, `${p.id}-b`, b);
  const worker = await Worker.start(nc, p, { checkpointMs: 50 });
  await waitFor(async () => Object.values(await worker.lag()).every((n) => n === 0), { timeoutMs: 30_000, message: "caught up" });
  if (outputs !== undefined) {
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(`${p.id}_out`)).state.messages >= outputs, {
      timeoutMs: 30_000,
      message: `${outputs} outputs`,
    });
  }
  await worker.stop();
  return readStreamJson<Pair>(nc, `${p.id}_out`);
}

describe("joins of two keyed streams", () => {
  const nats = useNatsServer();
  const a = events("a", 400, 1);
  const b = events("b", 400, 2);
  const low = Math.min(watermarkOf(a), watermarkOf(b));

  it("regular: every pair with the same key", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const out = await run(nc, joined("regular", (l, r) => l.join("j", r, (x, y) => ({ a: x.id, b: y.id }))), a, b);
    const expected = a.flatMap((x) => b.filter((y) => y.k === x.k).map((y) => ({ a: x.id, b: y.id })));
    expect(expected.length).toBeGreaterThan(10_000);
    expect(sorted(out)).toEqual(sorted(expected));
  });

  it("interval, left outer: partners within [-200 ms, +400 ms], the rest once with undefined", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = joined(
      "interval",
      (l, r) => l.intervalJoin("j", r, { lowerMs: -200, upperMs: 400, kind: "left" }, (x, y) => ({ a: x.id, b: y?.id ?? null })),
    );
    const out = await run(nc, p, a, b);
    const expected = a.flatMap((x): Pair[] => {
      const partners = b.filter((y) => y.k === x.k && x.t - 200 <= y.t && y.t <= x.t + 400);
      if (partners.length > 0) return partners.map((y) => ({ a: x.id, b: y.id }));
      // Unmatched: emitted once the watermark is past its last chance.
      return x.t + 400 < low ? [{ a: x.id, b: null }] : [];
    });
    expect(expected.filter((e) => e.b === null).length).toBeGreaterThan(5);
    expect(sorted(out)).toEqual(sorted(expected));
  });

  it("window, left outer: pairs in the same closed 5 s window", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = joined(
      "window",
      (l, r) => l.windowJoin("j", r, { size: 5_000, kind: "left" }, (x, y) => ({ a: x.id, b: y?.id ?? null })),
    );
    const out = await run(nc, p, a, b);
    const start = (t: number) => Math.floor(t / 5_000) * 5_000;
    const expected = a.filter((x) => start(x.t) + 5_000 <= low).flatMap((x): Pair[] => {
      const partners = b.filter((y) => y.k === x.k && start(y.t) === start(x.t));
      return partners.length > 0 ? partners.map((y) => ({ a: x.id, b: y.id })) : [{ a: x.id, b: null }];
    });
    expect(expected.filter((e) => e.b === null).length).toBeGreaterThan(0);
    expect(sorted(out)).toEqual(sorted(expected));
  });

  it("window, semi: each event with a partner in its closed 5 s window, once", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = joined("semi", (l, r) => l.windowJoin("j", r, { size: 5_000, kind: "semi" }, (x) => ({ a: x.id, b: null })));
    const out = await run(nc, p, a, b);
    const start = (t: number) => Math.floor(t / 5_000) * 5_000;
    const expected = a.filter((x) => start(x.t) + 5_000 <= low && b.some((y) => y.k === x.k && start(y.t) === start(x.t))).map((
      x,
    ) => ({ a: x.id, b: null }));
    // Most have several partners, and come out once all the same; some have none.
    expect(expected.length).toBeGreaterThan(300);
    expect(expected.length).toBeLessThan(a.filter((x) => start(x.t) + 5_000 <= low).length);
    expect(sorted(out)).toEqual(sorted(expected));
    // The batch oracle's definition agrees.
    expect(sorted(evaluate(p, { a, b }).streams.out as Pair[])).toEqual(sorted(expected));
  });

  it("as-of: each event with the other side's latest version at or before its time", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = joined("asof", (l, r) => l.asOfJoin("j", r, (x, y) => ({ a: x.id, b: y?.id ?? null }), { kind: "left" }));
    const out = await run(nc, p, a, b);
    const expected = a.filter((x) => x.t < low).map((x) => {
      let version: Ev | undefined;
      for (const y of b) if (y.k === x.k && y.t <= x.t && (!version || y.t >= version.t)) version = y;
      return { a: x.id, b: version?.id ?? null };
    });
    expect(expected.filter((e) => e.b === null).length).toBeGreaterThan(0);
    expect(sorted(out)).toEqual(sorted(expected));
  });

  it("an idle input stops holding the watermark back after its idle timeout", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const few = b.slice(0, 20);
    const start = (t: number) => Math.floor(t / 5_000) * 5_000;
    const expected = (watermark: number) =>
      a.filter((x) => start(x.t) + 5_000 <= watermark).flatMap((x): Pair[] => {
        const partners = few.filter((y) => y.k === x.k && start(y.t) === start(x.t));
        return partners.length > 0 ? partners.map((y) => ({ a: x.id, b: y.id })) : [{ a: x.id, b: null }];
      });
    const windowJoin = (name: string, idleTimeoutMs?: number) =>
      joined(
        name,
        (l, r) => l.windowJoin("j", r, { size: 5_000, kind: "left" }, (x, y) => ({ a: x.id, b: y?.id ?? null })),
        idleTimeoutMs,
      );
    // Without a timeout the quiet side holds every window after its watermark open...
    const held = await run(nc, windowJoin("busy-quiet"), a, few);
    expect(sorted(held)).toEqual(sorted(expected(watermarkOf(few))));
    // ... with one, the busy side's watermark closes them.
    const all = expected(watermarkOf(a));
    expect(all.length).toBeGreaterThan(held.length + 200);
    const closed = await run(nc, windowJoin("busy-idle", 200), a, few, all.length);
    expect(sorted(closed)).toEqual(sorted(all));
  });

  it("an interval join stopped and restarted in the middle emits every pair once", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const p = () =>
      joined("restart", (l, r) => l.intervalJoin("j", r, { lowerMs: 0, upperMs: 1_500 }, (x, y) => ({ a: x.id, b: y.id })));
    await publish(nc, "restart-a", a.slice(0, 200));
    await publish(nc, "restart-b", b.slice(0, 150));
    const first = await Worker.start(nc, p(), { checkpointMs: 50 });
    await waitFor(async () => Object.values(await first.lag()).every((n) => n === 0), {
      timeoutMs: 30_000,
      message: "caught up",
    });
    await first.stop();
    const out = await run(nc, p(), a.slice(200), b.slice(150));
    const expected = a.flatMap((x) =>
      b.filter((y) => y.k === x.k && x.t <= y.t && y.t <= x.t + 1_500).map((y) => ({ a: x.id, b: y.id }))
    );
    expect(sorted(out)).toEqual(sorted(expected));
  });
});
