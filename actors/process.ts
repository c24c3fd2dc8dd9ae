/**
 * The process operator: a user's own XState v5 machine per key (Flink's KeyedProcessFunction).
 * Each key holds its machine's persisted snapshot, advanced by XState's pure transition (no live
 * actor per key). What a transition returns is interpreted here: `emit` is an output of the step,
 * a delayed event a timer kept in the key's state (in event time, or on the actor's clock for the
 * delays named in `processingTime`), `cancel` drops one, a final state drops the key; other
 * actions are not run. It leans on XState beyond its documented use, which is why xstate is
 * pinned to one exact version (tests/process-xstate.test.ts fails when that changes).
 * See docs/ARCHITECTURE.md, "Process steps", for the details and the measurements behind them.
 *
 * @example
 * const op = processOperator(processLogic(orderMachine, { processingTime: ["remindAfter"] }));
 */
import { type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, createActor, type EventObject } from "xstate";
import type { Key } from "../src/core/partition.ts";
import { keyHash } from "../src/core/partition.ts";
import type { Operator, OperatorContext, Timers } from "./operator.ts";
import type { TableRows } from "./table-writer.ts";

/** Which clock a timer runs on. */
export const EVENT_TIME = 0;
export const PROCESSING_TIME = 1;

/** A pending timer: its number within the key, its clock, when it is due, XState's id, its event. */
export type Timer = readonly [n: number, clock: 0 | 1, due: number, id: string, event: EventObject];

/** A key's state, as checkpointed. */
export interface ProcessState {
  /** `machine.getPersistedSnapshot(...)`: JSON. */
  readonly snapshot: Record<string, unknown>;
  readonly timers: readonly Timer[];
  /** The number of the key's next timer. */
  readonly next: number;
}

export interface ProcessLogic {
  readonly machine: AnyStateMachine;
  /** Delays that run on the clock: `after` transitions with these names, delayed `raise`s with these ids. */
  readonly processingTime: ReadonlySet<string>;
  /** The ids of the delayed events that run on the clock: the named raises', and the `after` timers' of the named delays. */
  readonly onClock: ReadonlySet<string>;
  /** The machine's input for a new key. */
  readonly input: ((key: Key, event: unknown) => unknown) | undefined;
  /** Resolved snapshots by the persisted object they were read from (values are never changed in place). */
  readonly resolved: WeakMap<object, AnyMachineSnapshot>;
  /** XState's `initialTransition`: the initial snapshot and its actions, none of them run. */
  readonly initial: (input: unknown) => [AnyMachineSnapshot, ExecutableAction[]];
  /** XState's `transition`: the next snapshot and its actions, none of them run. */
  readonly transition: (snapshot: AnyMachineSnapshot, event: EventObject) => [AnyMachineSnapshot, ExecutableAction[]];
  /** XState's restore of a persisted snapshot (`getPersistedSnapshot`, read back from JSON). */
  readonly restore: (persisted: Record<string, unknown>) => AnyMachineSnapshot;
}

/** An action XState returned, not run: its type (`xstate.emit`, `xstate.raise`, ...) and params. */
interface ExecutableAction {
  readonly type: string;
  readonly params?: unknown;
}

export function processLogic(
  machine: AnyStateMachine,
  options: { readonly processingTime?: readonly string[]; readonly input?: (key: Key, event: unknown) => unknown } = {},
): ProcessLogic {
  // XState's pure `transition(machine, snapshot, event)` is `machine.transition(snapshot, event,
  // scope)` with an inert actor scope that collects the actions instead of running them; it builds
  // that scope (an actor and its system) on every call, `initialTransition` too (docs/ARCHITECTURE.md,
  // "Process steps", says what that costs). Here the scope is built once.
  const self = createActor(machine);
  let actions: ExecutableAction[] = [];
  const scope = {
    self,
    id: "",
    sessionId: "",
    system: self.system,
    logger: () => {},
    defer: () => {},
    emit: () => {},
    stopChild: () => {},
    actionExecutor: (action: ExecutableAction) => void actions.push(action),
  } as unknown as AnyActorScope;
  const collect = (next: () => AnyMachineSnapshot): [AnyMachineSnapshot, ExecutableAction[]] => {
    actions = [];
    const snapshot = next();
    return [snapshot, actions];
  };
  const processingTime = new Set(options.processingTime ?? []);
  return {
    machine,
    processingTime,
    onClock: new Set([...processingTime, ...afterIds(machine, processingTime)]),
    input: options.input,
    resolved: new WeakMap(),
    initial: (input) => collect(() => machine.getInitialSnapshot(scope, input)),
    transition: (snapshot, event) => collect(() => machine.transition(snapshot, event, scope)),
    // What `createActor(machine, { snapshot })` does with a persisted snapshot, without the actor;
    // the scope is only used for the children, which a process step's machines do not have.
    restore: (persisted) => machine.restoreSnapshot(persisted as Parameters<AnyStateMachine["restoreSnapshot"]>[0], scope),
  };
}

/**
 * The ids of the delayed events of the `after` transitions whose delay is named in `delays`, from
 * the machine's state nodes (`after` lists each delay with its `eventType`, the id XState gives its
 * delayed raise and cancel).
 */
function afterIds(machine: AnyStateMachine, delays: ReadonlySet<string>): string[] {
  const ids: string[] = [];
  if (delays.size === 0) return ids;
  const visit = (node: AnyStateMachine["root"]) => {
    for (const t of node.after) if (delays.has(String(t.delay))) ids.push(t.eventType);
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root);
  return ids;
}

/** The times a transition happens at: event time (base of event-time timers) and processing time. */
export interface At {
  readonly eventTime: number;
  readonly now: number;
}

/** What one transition of a key's machine gave: its next state (undefined: done) and its outputs. */
export interface MachineStep {
  readonly state: ProcessState | undefined;
  readonly emitted: readonly EventObject[];
}

/** Pure: a key's machine takes one event of the stream (a new key starts in the initial state). */
export function receive(
  logic: ProcessLogic,
  key: Key,
  before: ProcessState | undefined,
  event: unknown,
  at: At,
): MachineStep {
  if (before === undefined) {
    const [initial, entry] = logic.initial(logic.input?.(key, event));
    const [snapshot, actions] = logic.transition(initial, event as EventObject);
    return settle(logic, { snapshot: {}, timers: [], next: 0 }, snapshot, [...entry, ...actions], at);
  }
  const [snapshot, actions] = logic.transition(resolve(logic, before), event as EventObject);
  return settle(logic, before, snapshot, actions, at);
}

/** Pure: a key's timer fires (it is removed, and its event goes to the machine). */
export function fire(logic: ProcessLogic, before: ProcessState, timer: Timer, at: At): MachineStep {
  const rest = { ...before, timers: before.timers.filter((t) => t[0] !== timer[0]) };
  const [snapshot, actions] = logic.transition(resolve(logic, before), timer[4]);
  return settle(logic, rest, snapshot, actions, at);
}

/** The earliest timer of a key that is due: event time by the watermark, processing time by `now`. */
export function dueTimer(state: ProcessState, watermark: number, now: number | undefined): Timer | undefined {
  let due: Timer | undefined;
  for (const t of state.timers) {
    const ready = t[1] === EVENT_TIME ? t[2] <= watermark : now !== undefined && t[2] <= now;
    if (!ready) continue;
    if (!due || t[1] < due[1] || (t[1] === due[1] && (t[2] < due[2] || (t[2] === due[2] && t[0] < due[0])))) due = t;
  }
  return due;
}

function resolve(logic: ProcessLogic, state: ProcessState): AnyMachineSnapshot {
  const cached = logic.resolved.get(state.snapshot);
  if (cached) return cached;
  const snapshot = logic.restore(state.snapshot);
  logic.resolved.set(state.snapshot, snapshot);
  return snapshot;
}

function settle(
  logic: ProcessLogic,
  before: ProcessState,
  snapshot: AnyMachineSnapshot,
  actions: readonly ExecutableAction[],
  at: At,
): MachineStep {
  if (snapshot.status === "error") throw snapshot.error;
  const emitted: EventObject[] = [];
  let timers = before.timers;
  let next = before.next;
  for (const action of actions) {
    switch (action.type) {
      case "xstate.emit":
        emitted.push((action.params as { event: EventObject }).event);
        break;
      case "xstate.raise": {
        const { event, id, delay } = action.params as { event: EventObject; id?: string; delay?: number };
        if (typeof delay !== "number") break; // raised at once: XState handled it within the transition
        const onClock = id !== undefined && logic.onClock.has(id);
        const base = onClock ? at.now : at.eventTime;
        if (!onClock && !Number.isFinite(base)) {
          throw new Error(
            `the machine set an event-time timer (${
              id ?? event.type
            }), but the event has no event time: declare eventTime on the source, or name the delay in processingTime`,
          );
        }
        const n = next++;
        const timerId = id ?? `#${n}`;
        timers = [...timers.filter((t) => t[3] !== timerId), [
          n,
          onClock ? PROCESSING_TIME : EVENT_TIME,
          base + delay,
          timerId,
          event,
        ]];
        break;
      }
      case "xstate.cancel": {
        const { sendId } = action.params as { sendId: string };
        timers = timers.filter((t) => t[3] !== sendId);
        break;
      }
      case "xstate.spawnChild":
      case "xstate.sendTo":
        throw new Error(`a process step does not run actors: the machine's ${action.type} is not supported`);
    }
  }
  if (snapshot.status === "done") return { state: undefined, emitted };
  const persisted = logic.machine.getPersistedSnapshot(snapshot) as Record<string, unknown>;
  logic.resolved.set(persisted, snapshot);
  return { state: { snapshot: persisted, timers, next }, emitted };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The table row of a key: its machine's state value and context. */
export function processRow(key: Key, state: ProcessState): { key: Key; state: unknown; context: unknown } {
  return { key, state: state.snapshot.value, context: state.snapshot.context };
}

/** A process step's table rows: each key's machine (its state value and context). */
export const processRows: TableRows<ProcessState, EventObject> = { of: "state", row: processRow };

export function processOperator(logic: ProcessLogic): Operator<ProcessState, EventObject> {
  const index = (timers: Timers, key: Key, state: ProcessState) => {
    for (const [, clock, due] of state.timers) {
      if (clock === EVENT_TIME) timers.at(key, due);
      else timers.atClock(key, due);
    }
  };
  type Ctx = OperatorContext<ProcessState, EventObject>;
  const store = (ctx: Ctx, key: Key, hash: number, state: ProcessState | undefined) => {
    if (state === undefined) ctx.state.delete(key, hash);
    else {
      ctx.state.set(key, hash, state);
      index(ctx.timers, key, state);
    }
  };
  /**
   * Fire a key's timers due by `eventUpTo` (event time) or by `now` (the clock), earliest first,
   * until none is due (one a timer sets meanwhile included).
   */
  const fireDue = (ctx: Ctx, key: Key, eventUpTo: number, now: number | undefined) => {
    const hash = keyHash(key);
    for (;;) {
      const state = ctx.state.get(key, hash);
      const timer = state && dueTimer(state, eventUpTo, now);
      if (!timer) return;
      const onClock = timer[1] === PROCESSING_TIME;
      const at = { eventTime: onClock ? ctx.watermark : timer[2], now: now ?? ctx.now() };
      let step: MachineStep;
      try {
        step = fire(logic, state, timer, at);
      } catch (error) {
        // The timer is dropped: a dead letter with its event, the machine stays where it was.
        ctx.fail(timer[4], `timer ${timer[3]} of key ${JSON.stringify(key)} threw: ${message(error)}`);
        store(ctx, key, hash, { ...state, timers: state.timers.filter((t) => t !== timer) });
        continue;
      }
      for (const event of step.emitted) ctx.emit(event, { time: at.eventTime });
      store(ctx, key, hash, step.state);
    }
  };
  return {
    apply(ctx, rec) {
      const before = ctx.state.get(rec.key, rec.hash);
      const step = receive(logic, rec.key, before, rec.value, { eventTime: rec.time, now: ctx.now() });
      for (const event of step.emitted) ctx.emit(event);
      store(ctx, rec.key, rec.hash, step.state);
      // A timer the event set behind the watermark is due at once.
      fireDue(ctx, rec.key, ctx.watermark, undefined);
    },
    onTimer(ctx, key, time) {
      fireDue(ctx, key, time, undefined);
    },
    onClock(ctx, key, time) {
      fireDue(ctx, key, Number.NEGATIVE_INFINITY, time);
    },
    rearm: index,
  };
}
