/**
 * The process step leans on XState where its public pure API is too slow (scripts/bench-process.ts):
 * it runs `machine.getInitialSnapshot` and `machine.transition` on one actor scope of its own
 * instead of `initialTransition` and `transition`, which build a scope per call, and restores a
 * persisted snapshot with `machine.restoreSnapshot` on that scope instead of `createActor(machine,
 * { snapshot })`. These tests fail when XState changes underneath: for machines with `after`
 * timers, delayed raises and their cancels, emits, guards, eventless transitions, history and
 * final states, the step's paths give the snapshots and actions the public API gives, from JSON
 * too; and the ids of `after` timers named in `processingTime` are those XState raises.
 */
import { describe, expect, it } from "vitest";
import {
  type AnyMachineSnapshot,
  type AnyStateMachine,
  assign,
  cancel,
  createActor,
  emit,
  type EventObject,
  initialTransition,
  log,
  not,
  raise,
  setup,
  stateIn,
  transition,
} from "xstate";
import { orderMachine } from "../examples/coffee-shop/order-lifecycle.ts";
import { generateOrderStatus } from "../examples/coffee-shop/orders.ts";
import { EVENT_TIME, PROCESSING_TIME, processLogic, receive } from "../actors/process.ts";

/** What XState returned from one step: the persisted snapshot, its status, the actions (type and params). */
function seen(
  machine: AnyStateMachine,
  [snapshot, actions]: [AnyMachineSnapshot, readonly { type: string; params?: unknown }[]],
) {
  return {
    status: snapshot.status,
    output: snapshot.output,
    snapshot: machine.getPersistedSnapshot(snapshot) as Record<string, unknown>,
    actions: actions.map((a) => ({ type: a.type, params: a.params })),
  };
}

const json = <T>(x: T): T => JSON.parse(JSON.stringify(x));

/**
 * Run `events` through the step's paths and the public API side by side, asserting they agree at
 * every step, also from each step's snapshot read back from JSON; returns the public steps.
 */
function agree(machine: AnyStateMachine, events: readonly EventObject[], input?: unknown) {
  const logic = processLogic(machine);
  let mine = logic.initial(input);
  let theirs = initialTransition(machine, input) as typeof mine;
  expect(seen(machine, mine)).toEqual(seen(machine, theirs));
  const steps = [seen(machine, theirs)];
  for (const event of events) {
    const persisted = json(machine.getPersistedSnapshot(theirs[0]));
    const restored = logic.restore(json(persisted));
    const rehydrated = createActor(machine, { snapshot: json(persisted) }).getSnapshot();
    expect(machine.getPersistedSnapshot(restored)).toEqual(machine.getPersistedSnapshot(rehydrated));
    expect(restored.value).toEqual(theirs[0].value);
    const fromJson = logic.transition(restored, event);
    mine = logic.transition(mine[0], event);
    theirs = transition(machine, theirs[0], event) as typeof mine;
    expect(seen(machine, mine)).toEqual(seen(machine, theirs));
    expect(seen(machine, fromJson)).toEqual(seen(machine, theirs));
    expect(seen(machine, transition(machine, rehydrated, event) as typeof mine)).toEqual(seen(machine, theirs));
    steps.push(seen(machine, theirs));
  }
  return steps;
}

type Ev = { type: "go" | "stop" | "tick" | "pause" | "resume" | "deep"; n?: number };

const timersMachine = setup({
  types: { events: {} as Ev, context: {} as { n: number }, emitted: {} as { type: "ticked" | "late"; n: number } },
  delays: { wait: 1_000, slow: ({ context }) => 500 + context.n },
  guards: { big: ({ context }, params: { over: number }) => context.n > params.over },
}).createMachine({
  id: "timers",
  initial: "waiting",
  context: { n: 0 },
  states: {
    waiting: {
      entry: log("waiting"),
      after: { wait: "running", 250: { actions: emit({ type: "late", n: -1 }) } },
      on: { go: "running" },
    },
    running: {
      entry: [raise({ type: "tick" }, { delay: "slow", id: "tick" }), raise({ type: "tick", n: 1 }, { delay: 50 })],
      on: {
        tick: [
          { guard: { type: "big", params: { over: 2 } }, target: "done" },
          {
            actions: [
              assign({ n: ({ context }) => context.n + 1 }),
              emit(({ context }) => ({ type: "ticked" as const, n: context.n })),
              raise({ type: "tick" }, { delay: "slow", id: "tick" }),
            ],
          },
        ],
        stop: { actions: cancel("tick"), target: "stopped" },
      },
    },
    stopped: { always: { guard: not(stateIn("#timers.running")), target: "done" } },
    done: { type: "final" },
  },
  output: ({ context }) => ({ ticks: context.n }),
});

const historyMachine = setup({ types: { events: {} as Ev, context: {} as { entered: number } } }).createMachine({
  initial: "on",
  context: { entered: 0 },
  states: {
    on: {
      initial: "a",
      entry: assign({ entered: ({ context }) => context.entered + 1 }),
      states: {
        a: { on: { go: "b" } },
        b: {
          initial: "b1",
          states: { b1: { on: { deep: "b2" } }, b2: {} },
        },
        shallow: { type: "history" },
        deepest: { type: "history", history: "deep" },
      },
      on: { pause: "off" },
    },
    off: { on: { resume: "on.deepest", go: "on.shallow", stop: "end" } },
    end: { type: "final" },
  },
});

const parallelMachine = setup({ types: { events: {} as Ev, input: {} as { start: number }, context: {} as { n: number } } })
  .createMachine({
    type: "parallel",
    context: ({ input }) => ({ n: input.start }),
    states: {
      left: {
        initial: "l1",
        states: {
          l1: { on: { go: { target: "l2", actions: assign({ n: ({ context }) => context.n * 2 }) } } },
          l2: { type: "final" },
        },
      },
      right: {
        initial: "r1",
        states: {
          r1: { on: { tick: { guard: ({ context }) => context.n > 10, target: "r2" } } },
          r2: { type: "final", entry: emit({ type: "right-done" }) },
        },
      },
    },
  });

describe("the process step's XState paths", () => {
  it("agree with initialTransition and transition: after, delayed raise, cancel, emit, guards, eventless, final", () => {
    const steps = agree(timersMachine, [{ type: "go" }, { type: "tick" }, { type: "tick" }, { type: "stop" }]);
    const types = steps.flatMap((s) => s.actions.map((a) => a.type));
    // Every kind of action the step interprets is in what was compared.
    for (const t of ["xstate.raise", "xstate.cancel", "xstate.emit", "xstate.log"]) expect(types).toContain(t);
    expect(steps.at(-1)!.status).toBe("done");
    expect(steps.at(-1)!.output).toEqual({ ticks: 2 });
    // The guarded way out, too.
    const guarded = agree(timersMachine, [{ type: "go" }, ...Array.from({ length: 4 }, () => ({ type: "tick" as const }))]);
    expect(guarded.at(-1)!.status).toBe("done");
    expect(guarded.at(-1)!.output).toEqual({ ticks: 3 });
  });

  it("agree with them on history states, shallow and deep, through JSON", () => {
    const steps = agree(historyMachine, [
      { type: "go" },
      { type: "deep" },
      { type: "pause" },
      { type: "resume" },
      { type: "pause" },
      { type: "go" },
      { type: "pause" },
      { type: "stop" },
    ]);
    expect(steps.map((s) => s.snapshot)).toContainEqual(expect.objectContaining({ value: { on: { b: "b2" } } }));
    expect(steps.map((s) => s.snapshot.value).slice(4, 7)).toEqual([
      { on: { b: "b2" } },
      "off",
      { on: { b: "b1" } },
    ]);
    expect(steps.at(-1)!.status).toBe("done");
  });

  it("agree with them on parallel states, input and a final state reached by all regions", () => {
    const steps = agree(parallelMachine, [{ type: "tick" }, { type: "go" }, { type: "tick" }], { start: 6 });
    expect(steps.at(-1)!.status).toBe("done");
    expect(steps.at(-1)!.actions).toContainEqual({ type: "xstate.emit", params: { event: { type: "right-done" } } });
  });

  it("agree with them on the coffee shop's order lifecycle", () => {
    const all = [...generateOrderStatus({ seed: 3, count: 2_000 })];
    const servedIds = all.filter((e) => e.type === "served").map((e) => e.orderId);
    const ids = new Set([...all.slice(0, 20).map((e) => e.orderId), ...servedIds.slice(0, 20)]);
    const outcomes = new Set<string>();
    for (const id of ids) {
      const steps = agree(orderMachine, all.filter((e) => e.orderId === id));
      outcomes.add(String(steps.at(-1)!.snapshot.value));
    }
    expect(outcomes).toContain("served");
    // An order left placed, and its abandon timer firing.
    const placed = all.find((e) => e.type === "placed")!;
    const steps = agree(orderMachine, [placed, { type: "xstate.after.abandonAfter.order.placed" }]);
    expect(steps[1]!.actions.map((a) => a.type)).toContain("xstate.raise");
    expect(steps.at(-1)!.snapshot).toMatchObject({ value: "abandoned", status: "done" });
  });

  it("put the after timers of the delays named in processingTime on the clock, by the ids XState raises", () => {
    const logic = processLogic(timersMachine, { processingTime: ["wait"] });
    const [, entry] = initialTransition(timersMachine);
    const raised = entry.filter((a) => a.type === "xstate.raise").map((a) => (a.params as { id: string }).id);
    expect(raised).toHaveLength(2);
    // XState's after ids name the delay and the state (a numeric delay by its number).
    expect(raised.sort()).toEqual(["xstate.after.250.timers.waiting", "xstate.after.wait.timers.waiting"]);
    expect([...logic.onClock].sort()).toEqual(["wait", "xstate.after.wait.timers.waiting"]);
    expect([...processLogic(timersMachine, { processingTime: ["250", "tick"] }).onClock].sort()).toEqual([
      "250",
      "tick",
      "xstate.after.250.timers.waiting",
    ]);
    const { state } = receive(logic, "k", undefined, { type: "pause" }, { eventTime: 10_000, now: 900_000 });
    expect(state!.timers.map((t) => [t[1], t[2], t[3]]).sort()).toEqual([
      [EVENT_TIME, 10_250, "xstate.after.250.timers.waiting"],
      [PROCESSING_TIME, 901_000, "xstate.after.wait.timers.waiting"],
    ]);
  });

  it("find after timers in nested states, with dots in their delay names", () => {
    const m = setup({ types: { events: {} as { type: "go" } }, delays: { "1.5s": 1_500 } }).createMachine({
      id: "outer",
      initial: "a",
      states: { a: { initial: "b", states: { b: { after: { "1.5s": "c" } }, c: {} } } },
    });
    const { state } = receive(processLogic(m, { processingTime: ["1.5s"] }), "k", undefined, { type: "go" }, {
      eventTime: 0,
      now: 100,
    });
    expect(state!.timers).toEqual([
      [0, PROCESSING_TIME, 1_600, "xstate.after.1.5s.outer.a.b", { type: "xstate.after.1.5s.outer.a.b" }],
    ]);
  });
});
