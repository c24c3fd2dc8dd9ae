/**
 * The batch evaluator: the same pipeline definition, evaluated over in-memory arrays of events at
 * once, by the definitions of its steps rather than by Eddy's streaming machinery (no actors, no
 * partitions, no checkpoints). It is the Lambda architecture's batch layer reduced to a test
 * oracle: a streaming run over the same events, in the same order, must give the same tables and
 * streams, whatever the crashes.
 *
 * Event time follows the streaming definition: an event's watermark is the highest event time
 * before it in its source minus `maxOutOfOrderMs`; an event is late when every window it belongs
 * to ended (plus the allowed lateness) at or before that watermark; a window is emitted when the
 * final watermark has passed its end.
 *
 * @example
 * const out = evaluate(coffeeShop(), { orders: ordersArray }, { menu: new Map([["latte", { category: "coffee", price: 3.8 }]]) });
 * out.tables.revenue_by_store; // rows, as readTable would return them
 *
 * Process steps run each key's machine with the same pure transition (actors/process.ts) over
 * the key's events in order; an event-time timer fires before the first event of its key whose
 * watermark has reached it, or at the end if the final watermark has.
 *
 * Not evaluated: the streams of windows in the updates mode (their interleaving is the streaming
 * run's own business; their tables are evaluated); processing-time timers (there is no clock
 * here: they never fire).
 */
import { Either, Schema } from "effect";
import { EVENT_TIME, fire, processLogic, processRow, type ProcessState, receive } from "../../actors/process.ts";
import type { Key } from "../pipeline/partition.ts";
import type { Pipeline, Step } from "../pipeline/pipeline.ts";
import { windowRowKey } from "../state/table.ts";

export interface BatchResult {
  /** Result tables: their rows (for windowed steps, one per emitted window). */
  readonly tables: Record<string, Record<string, unknown>[]>;
  /** Stream sinks by step id: the messages, in emission order per key. */
  readonly streams: Record<string, unknown[]>;
  readonly deadLetters: { readonly step: string; readonly source: string; readonly index: number; readonly reason: string }[];
  readonly late: { readonly step: string; readonly source: string; readonly index: number }[];
}

interface Timed {
  readonly value: unknown;
  readonly time: number;
  readonly watermark: number;
  readonly source: string;
  readonly index: number;
}

export function evaluate(
  pipeline: Pipeline,
  events: Readonly<Record<string, readonly unknown[]>>,
  lookups: Readonly<Record<string, ReadonlyMap<string, unknown>>> = {},
): BatchResult {
  const steps = pipeline.steps;
  const children = (id: string) => steps.filter((s) => s.kind !== "source" && s.kind !== "lookup" && s.input === id);
  const result: BatchResult = { tables: {}, streams: {}, deadLetters: [], late: [] };
  /** What reaches each step, in order. */
  const inputs = new Map<string, Timed[]>();
  const push = (step: string, item: Timed) => {
    const list = inputs.get(step);
    if (list) list.push(item);
    else inputs.set(step, [item]);
  };
  let finalWatermark = Number.NEGATIVE_INFINITY;

  // Sources and their stateless chains, event by event.
  for (const source of steps) {
    if (source.kind !== "source") continue;
    const decode = Schema.decodeUnknownEither(source.schema);
    let maxTime = Number.NEGATIVE_INFINITY;
    (events[source.id] ?? []).forEach((raw, index) => {
      const decoded = decode(raw);
      if (Either.isLeft(decoded)) {
        result.deadLetters.push({ step: source.id, source: source.id, index, reason: "schema" });
        return;
      }
      const time = source.eventTime ? source.eventTime(decoded.right) : Number.NaN;
      const watermark = maxTime - source.maxOutOfOrderMs;
      if (time > maxTime) maxTime = time;
      const walk = (step: Step, value: unknown): void => {
        const fail = (error: unknown) =>
          result.deadLetters.push({ step: step.id, source: source.id, index, reason: String(error) });
        for (const next of children(step.id)) {
          try {
            if (next.kind === "map") walk(next, next.fn(value));
            else if (next.kind === "filter") {
              if (next.fn(value)) walk(next, value);
            } else if (next.kind === "join") {
              const match = lookups[next.lookup]?.get(String(next.key(value)));
              if (match !== undefined || !next.inner) walk(next, next.combine(value, match));
            } else push(next.id, { value, time, watermark, source: source.id, index });
          } catch (error) {
            fail(error);
          }
        }
      };
      walk(source, decoded.right);
    });
    if (source.eventTime) finalWatermark = Math.max(finalWatermark, maxTime - source.maxOutOfOrderMs);
  }

  const tables = new Map<string, Map<string, Record<string, unknown>>>();
  const toTable = (name: string, rowKey: string, row: Record<string, unknown>) => {
    const table = tables.get(name) ?? new Map<string, Record<string, unknown>>();
    table.set(rowKey, row);
    tables.set(name, table);
  };

  for (const step of steps) {
    // A stream sink right after a stateless chain: every event.
    if (step.kind === "stream" && inputs.has(step.id)) {
      (result.streams[step.id] ??= []).push(...inputs.get(step.id)!.map((t) => t.value));
    }
    if (step.kind !== "keyBy") continue;
    const items = inputs.get(step.id) ?? [];
    for (const next of children(step.id)) {
      if (next.kind === "aggregate") {
        // Fold every event per key; streams get every update, tables the last row per key. With a
        // TTL, a key whose last event is TTL behind the watermark starts afresh (or is gone at the end).
        const state = new Map<Key, { s: unknown[]; last: number }>();
        const streams = children(next.id).filter((s) => s.kind === "stream");
        const ttl = next.ttlMs;
        for (const { value, time, watermark } of items) {
          const key = step.key(value);
          let before = state.get(key);
          if (before && ttl !== undefined && before.last + ttl <= watermark) before = undefined;
          const after = before ? next.aggregate.add(before.s, value) : next.aggregate.init(value);
          state.set(key, { s: after, last: Math.max(before?.last ?? Number.NEGATIVE_INFINITY, time) });
          for (const sink of streams) (result.streams[sink.id] ??= []).push(next.aggregate.row(key, after));
        }
        for (const sink of children(next.id)) {
          if (sink.kind !== "table") continue;
          for (const [key, { s, last }] of state) {
            if (ttl === undefined || last + ttl > finalWatermark) toTable(sink.table, String(key), next.aggregate.row(key, s));
          }
        }
      }
      if (next.kind === "dedup") {
        // An event passes unless the last one that passed for its key is less than withinMs away,
        // and that one has not expired (the watermark is not withinMs past it).
        const last = new Map<Key, number>();
        const streams = children(next.id).filter((s) => s.kind === "stream");
        for (const { value, time, watermark } of items) {
          const key = step.key(value);
          const before = last.get(key);
          if (before !== undefined && before + next.withinMs > watermark && Math.abs(time - before) < next.withinMs) continue;
          last.set(key, time);
          for (const sink of streams) (result.streams[sink.id] ??= []).push(value);
        }
      }
      if (next.kind === "process") {
        const logic = processLogic(next.machine, { processingTime: next.processingTime, input: next.machineInput });
        const states = new Map<Key, ProcessState>();
        const streams = children(next.id).filter((s) => s.kind === "stream");
        const emit = (events: readonly unknown[]) => {
          for (const sink of streams) (result.streams[sink.id] ??= []).push(...events);
        };
        const store = (key: Key, state: ProcessState | undefined) => {
          if (state) states.set(key, state);
          else states.delete(key);
        };
        /** Fire a key's event-time timers up to `watermark`, earliest first (then in the order set). */
        const fireUpTo = (key: Key, watermark: number) => {
          for (;;) {
            const state = states.get(key);
            const timer = state?.timers.filter((t) => t[1] === EVENT_TIME && t[2] <= watermark)
              .sort((a, b) => a[2] - b[2] || a[0] - b[0])[0];
            if (!state || !timer) return;
            let step;
            try {
              step = fire(logic, state, timer, { eventTime: timer[2], now: 0 });
            } catch (error) {
              // The timer is dropped, the machine stays where it was.
              result.deadLetters.push({ step: next.id, source: `${state.born}/t${timer[0]}`, index: -1, reason: String(error) });
              store(key, { ...state, timers: state.timers.filter((t) => t !== timer) });
              continue;
            }
            emit(step.emitted);
            store(key, step.state);
          }
        };
        for (const item of items) {
          const key = step.key(item.value);
          fireUpTo(key, item.watermark);
          let after;
          try {
            after = receive(logic, key, states.get(key), item.value, `${item.source}/${item.index}`, {
              eventTime: item.time,
              now: 0,
            });
          } catch (error) {
            result.deadLetters.push({ step: next.id, source: item.source, index: item.index, reason: String(error) });
            continue;
          }
          emit(after.emitted);
          store(key, after.state);
          fireUpTo(key, item.watermark);
        }
        for (const key of [...states.keys()]) fireUpTo(key, finalWatermark);
        for (const sink of children(next.id)) {
          if (sink.kind !== "table") continue;
          for (const [key, state] of states) toTable(sink.table, String(key), processRow(key, state));
        }
      }
      if (next.kind !== "window") continue;
      for (const aggregate of children(next.id)) {
        if (aggregate.kind !== "aggregate") continue;
        const lateness = next.allowedLatenessMs;
        const windows = new Map<string, { key: Key; start: number; end: number; state: unknown[] }>();
        const byKey = new Map<Key, Timed[]>();
        for (const item of items) {
          const key = step.key(item.value);
          if ("gap" in next.window) {
            if (item.time + next.window.gap + lateness <= item.watermark) {
              result.late.push({ step: aggregate.id, source: item.source, index: item.index });
              continue;
            }
            const list = byKey.get(key);
            if (list) list.push(item);
            else byKey.set(key, [item]);
            continue;
          }
          const { size, slide } = next.window;
          const last = Math.floor(item.time / slide) * slide;
          let accepted = false;
          for (let start = last - size + slide; start <= last; start += slide) {
            if (start + size + lateness <= item.watermark) continue;
            accepted = true;
            const id = windowRowKey(key, start);
            const w = windows.get(id);
            if (w) w.state = aggregate.aggregate.add(w.state, item.value);
            else windows.set(id, { key, start, end: start + size, state: aggregate.aggregate.init(item.value) });
          }
          if (!accepted) result.late.push({ step: aggregate.id, source: item.source, index: item.index });
        }
        // Sessions: per key, by time, cut where the gap is reached.
        if ("gap" in next.window) {
          const gap = next.window.gap;
          for (const [key, list] of byKey) {
            const sorted = [...list].sort((a, b) => a.time - b.time);
            let current: { key: Key; start: number; end: number; state: unknown[] } | undefined;
            for (const item of sorted) {
              if (current && item.time < current.end) {
                current.state = aggregate.aggregate.add(current.state, item.value);
                current.end = Math.max(current.end, item.time + gap);
              } else {
                current = { key, start: item.time, end: item.time + gap, state: aggregate.aggregate.init(item.value) };
                windows.set(windowRowKey(key, item.time), current);
              }
            }
          }
        }
        for (const [id, w] of windows) {
          const closed = w.end <= finalWatermark;
          if (!closed && next.emit === "final") continue;
          const row = {
            ...aggregate.aggregate.row(w.key, w.state),
            windowStart: w.start,
            windowEnd: w.end,
            ...(next.emit === "updates" ? { final: closed } : {}),
          };
          for (const sink of children(aggregate.id)) {
            if (sink.kind === "table") toTable(sink.table, id, row);
            // Streams of final windows: one row per closed window (the order is not defined).
            if (sink.kind === "stream" && next.emit === "final") (result.streams[sink.id] ??= []).push(row);
          }
        }
      }
    }
  }
  for (const [name, rows] of tables) result.tables[name] = [...rows.values()];
  return result;
}
