/**
 * The batch evaluator: the same pipeline definition, evaluated over in-memory arrays of events at
 * once, by the definitions of its steps rather than by Eddy's streaming machinery (no actors, no
 * partitions, no checkpoints, no edges). It is the Lambda architecture's batch layer reduced to a
 * test oracle: a streaming run over the same events, in the same order, must give the same
 * tables and streams, whatever the crashes.
 * See docs/ARCHITECTURE.md, "The batch oracle", for how event time and process steps are
 * evaluated, and what is not.
 *
 * @example
 * const out = evaluate(coffeeShop(), { orders: ordersArray }, { menu: new Map([["latte", { category: "coffee", price: 3.8 }]]) });
 * out.tables.revenue_by_store; // rows, as readTable would return them
 */
import { Either } from "effect";
import { EVENT_TIME, fire, processLogic, processRow, type ProcessState, receive } from "../../actors/process.ts";
import { type Key, partitionOfKey } from "../core/partition.ts";
import type { Pipeline, Step } from "../pipeline/pipeline.ts";
import { windowRowKey } from "../state/table-page.ts";

export interface BatchResult {
  /** Result tables: their rows (for windowed steps, one per emitted window). */
  readonly tables: Record<string, Record<string, unknown>[]>;
  /** Stream sinks by step id: the messages, in emission order per key. */
  readonly streams: Record<string, unknown[]>;
  readonly deadLetters: { readonly step: string; readonly source: string; readonly index: number; readonly reason: string }[];
  readonly late: { readonly step: string; readonly source: string; readonly index: number }[];
}

/** What flows out of a step: a value with its event time and the watermark it met. */
interface Item {
  readonly value: unknown;
  readonly time: number;
  readonly watermark: number;
  readonly source: string;
  readonly index: number;
  /** Out of a keyBy: the key. */
  readonly key?: Key;
  /** A row's previous version, taken back out (an updating input). */
  readonly retract?: boolean;
}

/** A step's outputs, and the watermark its inputs end at. */
interface Output {
  readonly items: Item[];
  /** Where the watermark ends (for a source partitioned by subject: the lowest of its partitions'). */
  readonly watermark: number;
  /** From a source partitioned by subject, until a keyed step: where the watermark of a key's partition ends. */
  readonly endOf?: (key: Key) => number;
  /** Its items are row versions (a `Change` each: before, after). */
  readonly updating?: boolean;
  /** For a table: the rows, by row key. */
  readonly rows?: Map<string, Record<string, unknown>>;
  /** For a windowed aggregate: the events it found late. */
  readonly late?: Item[];
}

interface Change {
  readonly before: unknown;
  readonly after: unknown;
}

export interface EvaluateOptions {
  /**
   * The subject of each event, by source, for sources partitioned by subject (`partitionSubject`):
   * each partition then has a watermark of its own, as Eddy's readers keep it (Flink's
   * per-partition watermarks), and a keyed step's key meets its partition's. Without them, one
   * watermark over the whole source.
   */
  readonly subjects?: Readonly<Record<string, readonly string[]>>;
}

export function evaluate(
  pipeline: Pipeline,
  events: Readonly<Record<string, readonly unknown[]>>,
  lookups: Readonly<Record<string, ReadonlyMap<string, unknown>>> = {},
  options: EvaluateOptions = {},
): BatchResult {
  const result: BatchResult = { tables: {}, streams: {}, deadLetters: [], late: [] };
  const outputs = new Map<string, Output>();
  const of = (id: string) => outputs.get(id)!;
  const fail = (step: Step, item: Item, error: unknown) =>
    result.deadLetters.push({ step: step.id, source: item.source, index: item.index, reason: String(error) });

  for (const step of pipeline.steps) {
    switch (step.kind) {
      case "lookup":
        break;
      case "source":
        outputs.set(step.id, source(step, events[step.id] ?? [], result, pipeline.partitions, options.subjects?.[step.id]));
        break;
      case "map":
      case "filter":
      case "join": {
        const input = of(step.input);
        const items: Item[] = [];
        for (const item of input.items) {
          try {
            if (step.kind === "map") items.push({ ...item, value: step.fn(item.value) });
            else if (step.kind === "filter") {
              if (step.fn(item.value)) items.push(item);
            } else {
              const match = lookups[step.lookup]?.get(String(step.key(item.value)));
              if (match !== undefined || !step.inner) items.push({ ...item, value: step.combine(item.value, match) });
            }
          } catch (error) {
            fail(step, item, error);
          }
        }
        outputs.set(step.id, { items, watermark: input.watermark, ...(input.endOf ? { endOf: input.endOf } : {}) });
        break;
      }
      case "keyBy": {
        const input = of(step.input);
        const items: Item[] = [];
        const keyed = (item: Item, value: unknown, retract: boolean) => {
          try {
            items.push({ ...item, value, key: step.key(value), retract });
          } catch (error) {
            fail(step, item, error);
          }
        };
        for (const item of input.items) {
          if (!input.updating) keyed(item, item.value, false);
          else {
            const { before, after } = item.value as Change;
            if (before !== undefined) keyed(item, before, true);
            if (after !== undefined) keyed(item, after, false);
          }
        }
        outputs.set(step.id, { items, watermark: input.watermark, ...(input.endOf ? { endOf: input.endOf } : {}) });
        break;
      }
      case "window":
        outputs.set(step.id, of(step.input));
        break;
      case "aggregate": {
        const input = pipeline.step(step.input);
        const out = input.kind === "window"
          ? windowAggregate(step, input, of(input.id), result)
          : aggregate(step, of(step.input));
        outputs.set(step.id, out);
        break;
      }
      case "streamJoin":
        outputs.set(step.id, streamJoin(step, of(step.input), of(step.other)));
        break;
      case "process":
        outputs.set(step.id, process(step, of(step.input), result));
        break;
      case "dedup":
        outputs.set(step.id, dedup(step, of(step.input)));
        break;
      case "late": {
        const input = of(step.input);
        outputs.set(step.id, { items: input.late ?? [], watermark: input.watermark });
        break;
      }
      case "table": {
        const rows = of(step.input).rows ?? new Map();
        result.tables[step.table] = [...rows.values()];
        break;
      }
      case "stream": {
        const input = of(step.input);
        const producer = pipeline.step(step.input);
        if (producer.kind === "aggregate" && pipeline.step(producer.input).kind === "window") {
          const window = pipeline.step(producer.input) as Extract<Step, { kind: "window" }>;
          // Streams of final windows: one row per closed window (the order is not defined).
          if (window.emit === "final") result.streams[step.id] = input.items.map((i) => i.value);
        } else if (input.updating) {
          result.streams[step.id] = input.items.flatMap((i) => {
            const { after } = i.value as Change;
            return after === undefined ? [] : [after];
          });
        } else result.streams[step.id] = input.items.map((i) => i.value);
        break;
      }
    }
  }
  return result;
}

/**
 * Decode a source's events and give each its time and the watermark before it: the source's, or,
 * given the events' subjects of a source partitioned by subject, their partition's.
 */
function source(
  step: Extract<Step, { kind: "source" }>,
  raw: readonly unknown[],
  result: BatchResult,
  partitions: number,
  subjects: readonly string[] | undefined,
): Output {
  const token = step.partitionToken ?? -1;
  const partitionOfEvent = token >= 0 && subjects ? (index: number) => Number(subjects[index]?.split(".")[token] ?? 0) : () => 0;
  const maxTime = new Map<number, number>();
  const items: Item[] = [];
  raw.forEach((event, index) => {
    const p = partitionOfEvent(index);
    const max = maxTime.get(p) ?? Number.NEGATIVE_INFINITY;
    const decoded = step.schema.decode(event);
    if (Either.isLeft(decoded)) {
      result.deadLetters.push({ step: step.id, source: step.id, index, reason: "schema" });
      return;
    }
    const time = step.eventTime ? step.eventTime(decoded.right) : Number.NaN;
    items.push({ value: decoded.right, time, watermark: max - step.maxOutOfOrderMs, source: step.id, index });
    if (time > max) maxTime.set(p, time);
  });
  if (!step.eventTime) return { items, watermark: Number.NEGATIVE_INFINITY };
  const ends = new Map([...maxTime].map(([p, max]) => [p, max - step.maxOutOfOrderMs]));
  // Downstream of a keyed step, the lowest of the partitions that had events (as if idle ones were found idle).
  const watermark = ends.size === 0 ? Number.NEGATIVE_INFINITY : Math.min(...ends.values());
  if (token < 0 || !subjects) return { items, watermark };
  return { items, watermark, endOf: (key) => ends.get(partitionOfKey(key, partitions)) ?? Number.NEGATIVE_INFINITY };
}

/** Where the watermark of `key`'s partition ends. */
const endOf = (input: Output, key: Key) => input.endOf?.(key) ?? input.watermark;

/**
 * Fold every event per key; the outputs are the row changes. With a TTL, a key whose last event
 * is TTL behind the watermark starts afresh (or is gone at the end).
 */
function aggregate(step: Extract<Step, { kind: "aggregate" }>, input: Output): Output {
  const state = new Map<Key, { s: unknown[]; last: number }>();
  const ttl = step.ttlMs;
  const agg = step.aggregate;
  const items: Item[] = [];
  for (const item of input.items) {
    const key = item.key!;
    let before = state.get(key);
    if (before && ttl !== undefined && before.last + ttl <= item.watermark) {
      items.push({ ...item, value: { before: agg.row(key, before.s), after: undefined } });
      state.delete(key);
      before = undefined;
    }
    let after: unknown[] | undefined;
    if (item.retract) after = agg.remove(before!.s, item.value);
    else after = before ? agg.add(before.s, item.value) : agg.init(item.value);
    if (after === undefined) state.delete(key);
    else state.set(key, { s: after, last: Math.max(before?.last ?? Number.NEGATIVE_INFINITY, item.time) });
    items.push({ ...item, value: { before: before && agg.row(key, before.s), after: after && agg.row(key, after) } });
  }
  const rows = new Map<string, Record<string, unknown>>();
  for (const [key, { s, last }] of state) {
    if (ttl === undefined || last + ttl > endOf(input, key)) rows.set(String(key), agg.row(key, s));
  }
  return { items, watermark: input.watermark, updating: true, rows };
}

/** Windows per key (fixed or sessions); the outputs are the rows of the windows that closed. */
function windowAggregate(
  step: Extract<Step, { kind: "aggregate" }>,
  window: Extract<Step, { kind: "window" }>,
  input: Output,
  result: BatchResult,
): Output {
  const lateness = window.allowedLatenessMs;
  const agg = step.aggregate;
  const windows = new Map<string, { key: Key; start: number; end: number; state: unknown[] }>();
  const late: Item[] = [];
  const setAside = (item: Item) => {
    late.push(item);
    result.late.push({ step: step.id, source: item.source, index: item.index });
  };
  if ("gap" in window.window) {
    // Sessions: per key, by time, cut where the gap is reached.
    const gap = window.window.gap;
    const byKey = new Map<Key, Item[]>();
    for (const item of input.items) {
      if (item.time + gap + lateness <= item.watermark) setAside(item);
      else groupInto(byKey, item.key!, item);
    }
    for (const [key, list] of byKey) {
      let current: { key: Key; start: number; end: number; state: unknown[] } | undefined;
      for (const item of [...list].sort((a, b) => a.time - b.time)) {
        if (current && item.time < current.end) {
          current.state = agg.add(current.state, item.value);
          current.end = Math.max(current.end, item.time + gap);
        } else {
          current = { key, start: item.time, end: item.time + gap, state: agg.init(item.value) };
          windows.set(windowRowKey(key, item.time), current);
        }
      }
    }
  } else {
    const { size, slide } = window.window;
    for (const item of input.items) {
      const last = Math.floor(item.time / slide) * slide;
      let accepted = false;
      for (let start = last - size + slide; start <= last; start += slide) {
        if (start + size + lateness <= item.watermark) continue;
        accepted = true;
        const id = windowRowKey(item.key!, start);
        const w = windows.get(id);
        if (w) w.state = agg.add(w.state, item.value);
        else windows.set(id, { key: item.key!, start, end: start + size, state: agg.init(item.value) });
      }
      if (!accepted) setAside(item);
    }
  }
  const rows = new Map<string, Record<string, unknown>>();
  const items: Item[] = [];
  for (const [id, w] of windows) {
    const closed = w.end <= endOf(input, w.key);
    if (!closed && window.emit === "final") continue;
    const row = {
      ...agg.row(w.key, w.state),
      windowStart: w.start,
      windowEnd: w.end,
      ...(window.emit === "updates" ? { final: closed } : {}),
    };
    rows.set(id, row);
    if (closed) {
      items.push({ value: row, time: w.end - 1, watermark: Number.NEGATIVE_INFINITY, source: step.id, index: items.length });
    }
  }
  return { items, watermark: input.watermark, rows, late };
}

/** The pairs of a join of two keyed streams, by its definition (actors/join.ts). */
function streamJoin(step: Extract<Step, { kind: "streamJoin" }>, left: Output, right: Output): Output {
  const watermark = Math.min(left.watermark, right.watermark);
  const byKey = new Map<Key, Item[]>();
  for (const r of right.items) groupInto(byKey, r.key!, r);
  const items: Item[] = [];
  const out = (l: Item, r: Item | undefined, time: number) =>
    items.push({
      value: step.combine(l.value, r?.value),
      time,
      watermark: Number.NEGATIVE_INFINITY,
      source: step.id,
      index: items.length,
    });
  const join = step.join;
  for (const l of left.items) {
    const partners = byKey.get(l.key!) ?? [];
    switch (join.type) {
      case "regular":
        for (const r of partners) out(l, r, Math.max(l.time, r.time));
        break;
      case "interval": {
        const matched = partners.filter((r) => l.time + join.lowerMs <= r.time && r.time <= l.time + join.upperMs);
        for (const r of matched) out(l, r, Math.max(l.time, r.time));
        if (matched.length === 0 && step.outer && l.time + join.upperMs < watermark) out(l, undefined, l.time);
        break;
      }
      case "window": {
        const start = Math.floor(l.time / join.size) * join.size;
        if (start + join.size > watermark) break;
        const matched = partners.filter((r) => Math.floor(r.time / join.size) * join.size === start);
        if (join.semi) {
          if (matched.length > 0) out(l, undefined, start + join.size - 1);
          break;
        }
        for (const r of matched) out(l, r, start + join.size - 1);
        if (matched.length === 0 && step.outer) out(l, undefined, start + join.size - 1);
        break;
      }
      case "asOf": {
        if (l.time >= watermark) break;
        let version: Item | undefined;
        for (const r of partners) if (r.time <= l.time && (!version || r.time >= version.time)) version = r;
        if (version) out(l, version, Math.max(l.time, version.time));
        else if (step.outer) out(l, undefined, l.time);
        break;
      }
    }
  }
  // An outer interval join holds its watermark back (its unmatched events go out late).
  const delay = join.type === "interval" && step.outer ? Math.max(0, join.upperMs + 1) : 0;
  return { items, watermark: watermark - delay };
}

/**
 * An event passes unless the last one that passed for its key is less than withinMs away, and
 * that one has not expired (the watermark is not withinMs past it).
 */
function dedup(step: Extract<Step, { kind: "dedup" }>, input: Output): Output {
  const last = new Map<Key, number>();
  const items: Item[] = [];
  for (const item of input.items) {
    const before = last.get(item.key!);
    if (before !== undefined && before + step.withinMs > item.watermark && Math.abs(item.time - before) < step.withinMs) continue;
    last.set(item.key!, item.time);
    items.push({ ...item, watermark: Number.NEGATIVE_INFINITY, source: step.id, index: items.length });
  }
  return { items, watermark: input.watermark };
}

/** Each key's machine over the key's events, its event-time timers fired as the watermark passes them. */
function process(step: Extract<Step, { kind: "process" }>, input: Output, result: BatchResult): Output {
  const logic = processLogic(step.machine, { processingTime: step.processingTime, input: step.machineInput });
  const states = new Map<Key, ProcessState>();
  const items: Item[] = [];
  const emit = (events: readonly unknown[], time: number) => {
    for (const value of events) {
      items.push({ value, time, watermark: Number.NEGATIVE_INFINITY, source: step.id, index: items.length });
    }
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
      let next;
      try {
        next = fire(logic, state, timer, { eventTime: timer[2], now: 0 });
      } catch (error) {
        // The timer is dropped, the machine stays where it was.
        result.deadLetters.push({
          step: step.id,
          source: `@${timer[2]}/${JSON.stringify(key)}`,
          index: -1,
          reason: String(error),
        });
        store(key, { ...state, timers: state.timers.filter((t) => t !== timer) });
        continue;
      }
      emit(next.emitted, timer[2]);
      store(key, next.state);
    }
  };
  for (const item of input.items) {
    const key = item.key!;
    fireUpTo(key, item.watermark);
    let after;
    try {
      after = receive(logic, key, states.get(key), item.value, { eventTime: item.time, now: 0 });
    } catch (error) {
      result.deadLetters.push({ step: step.id, source: item.source, index: item.index, reason: String(error) });
      continue;
    }
    emit(after.emitted, item.time);
    store(key, after.state);
    fireUpTo(key, item.watermark);
  }
  for (const key of [...states.keys()]) fireUpTo(key, endOf(input, key));
  const rows = new Map<string, Record<string, unknown>>();
  for (const [key, state] of states) rows.set(String(key), processRow(key, state));
  return { items, watermark: input.watermark, rows };
}

/** Add `item` to the list of `key` in `groups` (in place: copying the list per item is quadratic). */
function groupInto<K, V>(groups: Map<K, V[]>, key: K, item: V): void {
  const list = groups.get(key);
  if (list) list.push(item);
  else groups.set(key, [item]);
}
