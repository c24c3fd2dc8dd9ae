/**
 * Process steps: a user's XState machine per key. The coffee-shop order lifecycle streamed across
 * a stop and restart equals the batch oracle (open orders table, outcome stream, and the average
 * time to serve per store, an aggregate over the outcomes); processing-time
 * timers fire on the worker's (manual) clock, event-time timers on the watermark, and both survive
 * a graceful stop and a new worker, each firing once; a transition that throws makes a dead letter
 * and the actor runs on. Without a server: a key advances exactly as XState's `initialTransition`
 * and `transition` say; snapshots round-trip through JSON, history included; delayed raises go on
 * the clock they are named for; a machine whose events are not the stream's values does not compile.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Schema } from "effect";
import { assign, emit, initialTransition, raise, setup, transition } from "xstate";
import { orderLifecycle, orderMachine, type OrderOutcome } from "../examples/coffee-shop/order-lifecycle.ts";
import { generateOrderStatus, Order, OrderStatus, publishOrderStatus } from "../examples/coffee-shop/orders.ts";
import { EVENT_TIME, PROCESSING_TIME, processLogic, type ProcessState, receive } from "../actors/process.ts";
import { evaluate } from "../src/oracle/batch.ts";
import { pipeline } from "../src/pipeline/pipeline.ts";
import { manualClock } from "../src/core/clock.ts";
import { readDeadLetters } from "../src/log/side-outputs.ts";
import { Worker } from "../src/runtime/worker.ts";
import { readTable } from "../src/state/table.ts";
import { readStreamJson, useNatsServer, waitFor } from "./support/nats.ts";

const byJson = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));
const sorted = <T>(xs: readonly T[]) => [...xs].sort(byJson);

const Ping = Schema.Struct({ type: Schema.Literal("start", "stop"), id: Schema.String, ts: Schema.Number });
type Ping = typeof Ping.Type;
type Pinged = { type: "nudged" | "expired" | "stopped"; id: string };

/**
 * A started key is nudged 5 s after its start on the worker's clock (processing time), and
 * expires 10 s after it in event time, unless it is stopped first.
 */
const pingMachine = setup({
  types: { context: {} as { id: string }, events: {} as Ping, emitted: {} as Pinged },
  delays: { nudgeAfter: 5_000, expireAfter: 10_000 },
}).createMachine({
  id: "ping",
  initial: "idle",
  context: { id: "" },
  states: {
    idle: { on: { start: { target: "active", actions: assign({ id: ({ event }) => event.id }) }, stop: "done" } },
    active: {
      initial: "waiting",
      after: {
        expireAfter: { target: "done", actions: emit(({ context }) => ({ type: "expired" as const, id: context.id })) },
      },
      on: { stop: { target: "done", actions: emit(({ context }) => ({ type: "stopped" as const, id: context.id })) } },
      states: {
        waiting: {
          after: {
            nudgeAfter: { target: "nudged", actions: emit(({ context }) => ({ type: "nudged" as const, id: context.id })) },
          },
        },
        nudged: {},
      },
    },
    done: { type: "final" },
  },
});

function pings() {
  const p = pipeline("pings", { partitions: 2 });
  const out = p.source("pings", { stream: "pings", schema: Ping, eventTime: (e) => e.ts })
    .keyBy("by-id", "id")
    .process("ping", pingMachine, { processingTime: ["nudgeAfter"] });
  out.toTable("pings_open");
  out.toStream("pings-out", { stream: "pings_out" });
  return p;
}

describe("process steps", () => {
  const nats = useNatsServer();

  it("run the order lifecycle per order, across a stop and restart, equal to the batch oracle", { timeout: 90_000 }, async () => {
    const nc = await nats.connect();
    const opts = { seed: 4, count: 2_000 };
    const { published } = await publishOrderStatus(nc, { stream: "order_status", ...opts });
    const events = [...generateOrderStatus(opts)];
    expect(published).toBe(events.length);

    const batch = evaluate(orderLifecycle(), { "order-status": events });
    const outcomes = batch.streams["order-outcomes"] as OrderOutcome[];
    const served = outcomes.filter((o) => o.type === "served");
    expect(served.length).toBeGreaterThan(500);
    expect(outcomes.filter((o) => o.type === "abandoned").length).toBeGreaterThan(50);
    expect(served.every((o) => o.type === "served" && o.waitMs >= 35_000)).toBe(true);

    const first = await Worker.start(nc, orderLifecycle(), { checkpointMs: 50, maxBatch: 100 });
    await waitFor(() => first.committedPosition("order-status") >= published / 2, { timeoutMs: 30_000, message: "half way" });
    await first.stop();
    const second = await Worker.start(nc, orderLifecycle(), { checkpointMs: 50 });
    await waitFor(() => second.committedPosition("order-status") >= published, { timeoutMs: 30_000, message: "caught up" });
    const servedSoFar = async () =>
      (await readTable<{ served: number }>(nc, "serve_time_by_store")).reduce((n, r) => n + r.served, 0);
    await waitFor(async () => (await servedSoFar()) === served.length, { timeoutMs: 30_000, message: "served orders counted" });
    const processActors = () => [first, second].flatMap((w) => w.status()).filter((a) => a.step === "order");
    const keys = second.status().filter((a) => a.step === "order").reduce((n, a) => n + a.keys, 0);
    const outputs = processActors().reduce((n, a) => n + a.outputs, 0);
    await second.stop();

    const streamed = await readStreamJson<OrderOutcome>(nc, "order_outcomes");
    expect(sorted(streamed)).toEqual(sorted(outcomes));
    // Nothing emitted twice, even before the server's dedup: each outcome to the stream and the edge.
    expect(outputs).toBe(2 * outcomes.length);
    const open = await readTable<{ key: string; state: string }>(nc, "open_orders");
    expect(sorted(open)).toEqual(sorted(batch.tables.open_orders!));
    expect(open.length).toBeGreaterThan(0);
    expect(new Set(open.map((r) => r.state))).toEqual(new Set(["placed", "brewing"]));
    // Done orders are dropped: state holds the open orders only.
    expect(keys).toBe(open.length);
    // The outcomes, read by a later step: orders served and the average time to serve, per store.
    const serveTime = await readTable<{ key: string; served: number; avgWaitMs: number }>(nc, "serve_time_by_store");
    expect(sorted(serveTime)).toEqual(sorted(batch.tables.serve_time_by_store!));
    expect(serveTime.reduce((n, r) => n + r.served, 0)).toBe(served.length);
  });

  it("fire processing-time timers on the worker's clock and event-time timers on the watermark, once, across a restart", {
    timeout: 60_000,
  }, async () => {
    const nc = await nats.connect();
    await (await jetstreamManager(nc)).streams.add({ name: "pings", subjects: ["pings"] });
    const js = jetstream(nc);
    const clock = manualClock(1_000_000);
    /** Move the clock in steps, letting the actors' ticks and the publisher's acks happen. */
    const advance = async (ms: number) => {
      for (let done = 0; done < ms; done += 500) {
        clock.advance(500);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const emitted = async () => (await (await jetstreamManager(nc)).streams.info("pings_out")).state.messages;
    const events: Ping[] = [
      { type: "start", id: "a", ts: 1_000 },
      { type: "start", id: "b", ts: 2_000 },
      { type: "start", id: "c", ts: 3_000 },
      { type: "stop", id: "c", ts: 4_000 },
    ];
    for (const e of events) await js.publish("pings", JSON.stringify(e));
    const options = { clock, checkpointMs: 1_000, checkpointEvents: 1, tickMs: 100 };

    const first = await Worker.start(nc, pings(), options);
    await waitFor(() => first.committedPosition("pings") >= 4, { message: "first events" });
    await waitFor(async () => (await emitted()) === 1, { message: "c stopped" });
    await advance(3_000); // nudges are due 5 s after the starts, by the clock
    expect(await emitted()).toBe(1);
    await first.stop();

    const second = await Worker.start(nc, pings(), options);
    await advance(2_000);
    await waitFor(async () => (await emitted()) === 3, { message: "a and b nudged" });
    await advance(10_000); // a nudge fires once
    // Event time moves to 20 s: a (expiring at 11 s) and b (12 s) expire; d starts.
    const d: Ping = { type: "start", id: "d", ts: 20_000 };
    await js.publish("pings", JSON.stringify(d));
    await waitFor(async () => (await emitted()) === 5, { message: "a and b expired" });
    await advance(1_000); // a checkpoint of the partition without d
    await waitFor(() => second.committedPosition("pings") >= 5, { message: "d" });
    const outputs = [first, second].flatMap((w) => w.status()).reduce((n, a) => n + a.outputs, 0);
    await second.stop();

    expect(sorted(await readStreamJson<Pinged>(nc, "pings_out"))).toEqual(sorted([
      { type: "stopped", id: "c" },
      { type: "nudged", id: "a" },
      { type: "nudged", id: "b" },
      { type: "expired", id: "a" },
      { type: "expired", id: "b" },
    ]));
    expect(outputs).toBe(5);
    const open = await readTable(nc, "pings_open");
    expect(open).toEqual([{ key: "d", state: { active: "waiting" }, context: { id: "d" } }]);
    // The oracle has no clock: no nudges, the rest the same.
    const batch = evaluate(pings(), { pings: [...events, d] });
    expect(batch.tables.pings_open).toEqual(open);
    expect(sorted(batch.streams["pings-out"]!)).toEqual(sorted([
      { type: "stopped", id: "c" },
      { type: "expired", id: "a" },
      { type: "expired", id: "b" },
    ]));
  });

  it("set a throwing transition's event aside as a dead letter and keep the key's machine", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    await (await jetstreamManager(nc)).streams.add({ name: "fuses", subjects: ["fuses"] });
    const Fuse = Schema.Struct({ type: Schema.Literal("arm", "poke"), id: Schema.String, ts: Schema.Number });
    const fuse = setup({ types: { events: {} as typeof Fuse.Type, context: {} as { pokes: number } }, delays: { burn: 1_000 } })
      .createMachine({
        initial: "armed",
        context: { pokes: 0 },
        states: {
          armed: {
            after: {
              burn: {
                actions: assign(() => {
                  throw new Error("burnt out");
                }),
              },
            },
            on: {
              poke: {
                actions: assign(({ context, event }) => {
                  if (event.ts > 10_000) throw new Error("poked too late");
                  return { pokes: context.pokes + 1 };
                }),
              },
            },
          },
        },
      });
    const fuses = () => {
      const p = pipeline("fuses", { partitions: 1 });
      p.source("fuses", { stream: "fuses", schema: Fuse, eventTime: (f) => f.ts })
        .keyBy("by-id", "id").process("fuse", fuse).toTable("fuse_states");
      return p;
    };
    const events: (typeof Fuse.Type)[] = [
      { type: "arm", id: "a", ts: 0 },
      { type: "poke", id: "a", ts: 500 },
      { type: "poke", id: "a", ts: 20_000 }, // throws; the watermark passes the timer, which throws too
    ];
    const js = jetstream(nc);
    for (const e of events) await js.publish("fuses", JSON.stringify(e));
    const worker = await Worker.start(nc, fuses(), { checkpointMs: 20 });
    await waitFor(() => worker.committedPosition("fuses") >= 3, { message: "caught up" });
    expect(worker.status().map((a) => a.state)).not.toContain("failed");
    await worker.stop();
    const reasons = (await readDeadLetters(nc, "fuses")).map((l) => l.reason).sort();
    expect(reasons).toHaveLength(2);
    expect(reasons[0]).toMatch(/^step "fuse" threw on key "a": poked too late/);
    expect(reasons[1]).toMatch(/^step "fuse": timer xstate\.after\.burn\.\S+ of key "a" threw: burnt out/);
    const rows = await readTable(nc, "fuse_states");
    expect(rows).toEqual([{ key: "a", state: "armed", context: { pokes: 1 } }]);
    const batch = evaluate(fuses(), { fuses: events });
    expect(batch.tables.fuse_states).toEqual(rows);
    expect(batch.deadLetters).toHaveLength(2);
  });
});

describe("process steps, without a server", () => {
  it("keep snapshots that round-trip through JSON, history included", () => {
    type Ev = { type: "next" | "pause" | "resume"; ts: number };
    const player = setup({
      types: { events: {} as Ev, emitted: {} as { type: "track"; n: number }, context: {} as { n: number } },
    })
      .createMachine({
        initial: "playing",
        context: { n: 0 },
        states: {
          playing: {
            initial: "one",
            states: {
              one: { on: { next: "two" } },
              two: {
                entry: [
                  assign({ n: ({ context }) => context.n + 1 }),
                  emit(({ context }) => ({ type: "track" as const, n: context.n })),
                ],
              },
              hist: { type: "history" },
            },
            on: { pause: "paused" },
          },
          paused: { on: { resume: "playing.hist" } },
        },
      });
    const at = { eventTime: 0, now: 0 };
    let state: ProcessState | undefined;
    let emitted: readonly unknown[] = [];
    for (const type of ["next", "pause", "resume"] as const) {
      // Each step from the JSON of the last, as after a restart.
      const before = state && JSON.parse(JSON.stringify(state));
      ({ state, emitted } = receive(processLogic(player), "k", before, { type, ts: 0 }, at));
    }
    // Back to where it paused (entering "two" again counts a track).
    expect(state!.snapshot.value).toEqual({ playing: "two" });
    expect(emitted).toEqual([{ type: "track", n: 2 }]);
  });

  it("advance as XState's initialTransition and transition do", () => {
    const logic = processLogic(orderMachine);
    const all = [...generateOrderStatus({ seed: 2, count: 2_000 })];
    const served = all.find((e) => e.type === "served")!;
    const events = all.filter((e) => e.orderId === served.orderId);
    expect(events.map((e) => e.type)).toEqual(["placed", "brewing", "served"]);
    let [expected, actions] = initialTransition(orderMachine);
    let state: ProcessState | undefined;
    for (const event of events) {
      let next;
      [next, actions] = transition(orderMachine, expected, event);
      expected = next;
      const step = receive(logic, event.orderId, state, event, { eventTime: event.ts, now: 0 });
      state = step.state;
      expect(step.emitted).toEqual(
        actions.filter((a) => (a.type as string) === "xstate.emit").map((a) => (a.params as { event: unknown }).event),
      );
      if (state) expect(state.snapshot).toEqual(orderMachine.getPersistedSnapshot(expected));
    }
    expect(expected.status).toBe("done");
    expect(state).toBeUndefined();
  });

  it("put a delayed raise on the clock when its id is named in processingTime, else in event time", () => {
    const m = setup({ types: { events: {} as { type: "go" | "later" | "remind" } } }).createMachine({
      on: {
        go: { actions: [raise({ type: "remind" }, { delay: 300, id: "remind" }), raise({ type: "later" }, { delay: 200 })] },
      },
    });
    const { state } = receive(processLogic(m, { processingTime: ["remind"] }), "k", undefined, { type: "go" }, {
      eventTime: 1_000,
      now: 50_000,
    });
    expect(state!.timers).toEqual([
      [0, PROCESSING_TIME, 50_300, "remind", { type: "remind" }],
      [1, EVENT_TIME, 1_200, "#1", { type: "later" }],
    ]);
  });

  it("reject, at compile time, a machine whose events are not the stream's values", () => {
    const p = pipeline("process-types");
    const statuses = p.source("status", { stream: "status", schema: OrderStatus, eventTime: (s) => s.ts }).keyBy("k", "orderId");
    const out = statuses.process("lifecycle", orderMachine);
    const event: NonNullable<typeof out.event> = { type: "abandoned", orderId: "o", store: "s", placedAt: 0, ts: 1 };
    const row: NonNullable<ReturnType<typeof out.toTable>["row"]> = {
      key: "o",
      state: "brewing",
      context: { orderId: "o", store: "s", placedAt: 0, brewingAt: 5 },
    };
    expect([event.type, row.state]).toEqual(["abandoned", "brewing"]);
    const orders = p.source("orders", { stream: "orders", schema: Order }).keyBy("k2", "orderId");
    // @ts-expect-error: orders are not events of the order lifecycle machine
    orders.process("wrong-events", orderMachine);
    // @ts-expect-error: the machine has no delay "brewTimeout"
    statuses.process("wrong-delay", orderMachine, { processingTime: ["brewTimeout"] });
    const Wider = Schema.Struct({
      type: Schema.Literal("placed", "refunded"),
      orderId: Schema.String,
      store: Schema.String,
      ts: Schema.Number,
    });
    // @ts-expect-error: "refunded" is not an event of the machine
    p.source("wider", { stream: "wider", schema: Wider }).keyBy("k3", "orderId").process("wider-events", orderMachine);
  });
});
