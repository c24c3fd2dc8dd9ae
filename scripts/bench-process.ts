/**
 * What XState's public pure API costs a process step, beside the paths actors/process.ts takes,
 * measured in one run, interleaved, through the step's own `receive` and `fire`, over the coffee
 * shop's order lifecycle machine (examples/coffee-shop/order-lifecycle.ts). No server.
 *
 * Cases (stable ids):
 *   process-fold     every event of `--orders` generated orders (about 2.8 events an order, each
 *                    order a key), its due `after` timers fired as the watermark (2 s behind the
 *                    latest event time) passes them; snapshots stay resolved in memory
 *   process-restore  every event that finds its key's state, that state read back from JSON
 *                    first, as after a recovery: each event restores a snapshot
 * Variants:
 *   shipped          processLogic as it is: one actor scope for every transition, restored with
 *                    `machine.restoreSnapshot(persisted, scope)`
 *   public           `initialTransition`, `transition` and `createActor(machine, { snapshot })`
 *   public-initial   shipped, a new key's machine started with `initialTransition`
 *   public-transition  shipped, every event and timer through `transition`
 *   public-restore   shipped, restored with `createActor(machine, { snapshot }).getSnapshot()`
 *   resolve-state    shipped, restored with `machine.resolveState` and the persisted history
 *                    value's `{ id }`s looked up by hand (what process.ts did before)
 * Every variant must give the same outputs and states; the script fails otherwise.
 *
 *   npx tsx scripts/bench-process.ts [--orders 72500] [--reps 3] [--cases process-fold,process-restore]
 */
import { type AnyStateMachine, createActor, initialTransition, transition } from "xstate";
import { orderMachine } from "../examples/coffee-shop/order-lifecycle.ts";
import { generateOrderStatus, type OrderStatus } from "../examples/coffee-shop/orders.ts";
import { dueTimer, fire, type ProcessLogic, processLogic, type ProcessState, receive } from "../actors/process.ts";
import { EventTimers } from "../actors/timers.ts";

const flags = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) flags.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const orders = Number(flags.get("orders") ?? 72_500);
const reps = Number(flags.get("reps") ?? 3);
const only = flags.get("cases")?.split(",");
const maxOutOfOrderMs = 2_000;
/** Events a variant runs before the next one takes its turn. */
const slice = 2_000;

type Variant = "shipped" | "public" | "public-initial" | "public-transition" | "public-restore" | "resolve-state";

function logicOf(variant: Variant, machine: AnyStateMachine): ProcessLogic {
  const shipped = processLogic(machine);
  const viaActor = (persisted: Record<string, unknown>) =>
    createActor(machine, { snapshot: persisted as Parameters<AnyStateMachine["restoreSnapshot"]>[0] }).getSnapshot();
  switch (variant) {
    case "shipped":
      return shipped;
    case "public":
      return {
        ...shipped,
        initial: (input) => initialTransition(machine, input) as ReturnType<ProcessLogic["initial"]>,
        transition: (snapshot, event) => transition(machine, snapshot, event) as ReturnType<ProcessLogic["transition"]>,
        restore: viaActor,
      };
    case "public-initial":
      return { ...shipped, initial: (input) => initialTransition(machine, input) as ReturnType<ProcessLogic["initial"]> };
    case "public-transition":
      return {
        ...shipped,
        transition: (snapshot, event) => transition(machine, snapshot, event) as ReturnType<ProcessLogic["transition"]>,
      };
    case "public-restore":
      return { ...shipped, restore: viaActor };
    case "resolve-state":
      return {
        ...shipped,
        restore: (persisted) => {
          const history = (persisted as { historyValue?: Record<string, { id: string }[]> }).historyValue ?? {};
          const historyValue = Object.fromEntries(
            Object.entries(history).map(([k, nodes]) => [k, nodes.map((n) => machine.getStateNodeById(n.id))]),
          );
          return machine.resolveState({ ...persisted, historyValue } as Parameters<AnyStateMachine["resolveState"]>[0]);
        },
      };
  }
}

interface Outcome {
  readonly events: number;
  readonly fired: number;
  readonly emitted: number;
  /** The states left, as JSON, for the variants to be compared. */
  readonly digest: string;
}

/** A run of one variant over a case's inputs, advanced a slice at a time. */
interface Run {
  readonly advance: (from: number, to: number) => void;
  readonly outcome: () => Outcome;
}

/** The process step's fold over `events`, as processOperator runs it: receive, then fire what is due. */
function fold(logic: ProcessLogic, events: readonly OrderStatus[]): Run {
  const states = new Map<string, ProcessState>();
  const timers = new EventTimers();
  let watermark = Number.NEGATIVE_INFINITY;
  let fired = 0;
  let emitted = 0;
  const store = (key: string, state: ProcessState | undefined) => {
    if (state === undefined) states.delete(key);
    else {
      states.set(key, state);
      for (const t of state.timers) timers.add(t[2], key);
    }
  };
  const fireDue = (key: string) => {
    for (;;) {
      const state = states.get(key);
      const timer = state && dueTimer(state, watermark, undefined);
      if (!timer) return;
      const step = fire(logic, state, timer, { eventTime: timer[2], now: 0 });
      fired++;
      emitted += step.emitted.length;
      store(key, step.state);
    }
  };
  return {
    advance(from, to) {
      for (let i = from; i < to; i++) {
        const e = events[i]!;
        watermark = Math.max(watermark, e.ts - maxOutOfOrderMs);
        const step = receive(logic, e.orderId, states.get(e.orderId), e, { eventTime: e.ts, now: 0 });
        emitted += step.emitted.length;
        store(e.orderId, step.state);
        fireDue(e.orderId);
        timers.fireDue(watermark, (_at, key) => fireDue(key as string));
      }
    },
    outcome: () => ({ events: events.length, fired, emitted, digest: JSON.stringify([...states]) }),
  };
}

/** An event and the JSON of its key's state before it. */
type Restored = readonly [key: string, before: string, event: OrderStatus];

/** The events that find their key's state, each with that state as JSON (from a fold with `logic`). */
function restoredInputs(logic: ProcessLogic, events: readonly OrderStatus[]): Restored[] {
  const states = new Map<string, ProcessState>();
  const out: Restored[] = [];
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const before = states.get(e.orderId);
    if (before) out.push([e.orderId, JSON.stringify(before), e]);
    const step = receive(logic, e.orderId, before, e, { eventTime: e.ts, now: 0 });
    if (step.state) states.set(e.orderId, step.state);
    else states.delete(e.orderId);
  }
  return out;
}

/** Each input's event on its state read back from JSON (all parsed before the clock starts). */
function restoreEach(logic: ProcessLogic, inputs: readonly Restored[]): Run {
  const parsed = inputs.map(([, json]) => JSON.parse(json) as ProcessState);
  let emitted = 0;
  const sample: unknown[] = [];
  return {
    advance(from, to) {
      for (let i = from; i < to; i++) {
        const [key, , event] = inputs[i]!;
        const step = receive(logic, key, parsed[i], event, { eventTime: event.ts, now: 0 });
        emitted += step.emitted.length;
        if (i % 997 === 0) sample.push(step.state?.snapshot ?? null);
      }
    },
    outcome: () => ({ events: inputs.length, fired: 0, emitted, digest: JSON.stringify(sample) }),
  };
}

const events = [...generateOrderStatus({ seed: 1, count: orders })];
const keys = new Set(events.map((e) => e.orderId)).size;
const inputs = restoredInputs(processLogic(orderMachine), events);
console.log(
  `${events.length} events over ${keys} keys (orders); ${inputs.length} of them on a key with state; ${reps} reps, interleaved`,
);

const cases: Record<string, { variants: Variant[]; size: number; start: (logic: ProcessLogic) => Run }> = {
  "process-fold": {
    variants: ["shipped", "public", "public-initial", "public-transition"],
    size: events.length,
    start: (logic) => fold(logic, events),
  },
  "process-restore": {
    variants: ["shipped", "public", "public-restore", "resolve-state"],
    size: inputs.length,
    start: (logic) => restoreEach(logic, inputs),
  },
};

// Warm up every variant (JIT) on a slice, untimed.
for (const c of Object.values(cases)) for (const v of c.variants) c.start(logicOf(v, orderMachine)).advance(0, 10_000);

const rates: Record<string, Record<string, number[]>> = {};
let failed = false;
for (let rep = 0; rep < reps; rep++) {
  for (const [id, c] of Object.entries(cases)) {
    if (only && !only.includes(id)) continue;
    const runs = new Map(c.variants.map((v) => [v, c.start(logicOf(v, orderMachine))]));
    const ms = new Map(c.variants.map((v) => [v, 0]));
    // Interleaved a slice at a time, the variants' order rotating, so a busy moment of this
    // shared machine falls on all of them alike.
    for (let from = 0, turn = rep; from < c.size; from += slice, turn++) {
      const to = Math.min(c.size, from + slice);
      for (let k = 0; k < c.variants.length; k++) {
        const v = c.variants[(k + turn) % c.variants.length]!;
        const t0 = performance.now();
        runs.get(v)!.advance(from, to);
        ms.set(v, ms.get(v)! + performance.now() - t0);
      }
    }
    const outcomes = new Map(c.variants.map((v) => [v, runs.get(v)!.outcome()]));
    for (const [v, o] of outcomes) {
      ((rates[id] ??= {})[v] ??= []).push(Math.round((o.events + o.fired) / (ms.get(v)! / 1000)));
    }
    const ref = outcomes.get("shipped")!;
    for (const [v, o] of outcomes) {
      if (o.emitted !== ref.emitted || o.fired !== ref.fired || o.digest !== ref.digest) {
        console.error(
          `${id}: ${v} differs from shipped (emitted ${o.emitted} vs ${ref.emitted}, fired ${o.fired} vs ${ref.fired})`,
        );
        failed = true;
      }
    }
    const line = c.variants.map((v) => {
      const r = rates[id]![v]![rep]!;
      const ratio = r / rates[id]!.shipped![rep]!;
      return `${v} ${(r / 1000).toFixed(1)}k/s${v === "shipped" ? "" : ` (${ratio.toFixed(2)}x)`}`;
    });
    console.log(`rep ${rep + 1} ${id} (${ref.events} events + ${ref.fired} timers): ${line.join(", ")}`);
  }
}
console.log(JSON.stringify({ events: events.length, keys, restoredEvents: inputs.length, eventsPerSec: rates }));
if (failed) process.exit(1);
