/**
 * Aggregates: what an `aggregate` step keeps per key. Each aggregate is a small pure fold
 * (`init` from the first event, `add` for the next ones, `result` for the output column), and a
 * step's spec names several of them; the output row type is inferred from the spec.
 *
 * @example
 * orders.keyBy("by-store", "store").aggregate("revenue", (a) => ({
 *   orders: a.count(),
 *   revenue: a.sum((o) => o.qty * o.unitPrice),
 *   largest: a.max("qty"),
 *   items: a.reduce(0, (n, o) => n + o.qty),
 * }));
 */

import { ConfigError } from "../core/errors.ts";
import type { NumericLayout } from "../state/keyed-state.ts";

/** The numeric fields of T, by name: `a.sum("qty")` compiles only if `qty` is a number. */
export type NumericField<T> = { [F in keyof T]-?: T[F] extends number ? F : never }[keyof T] & string;

/** A number read from an event: a numeric field's name, or a function. */
export type NumberOf<T> = NumericField<T> | ((value: T) => number);

/**
 * One aggregate: a pure fold with JSON-serialisable state S and output O. `add` returns the new
 * state and leaves the old one as it was, so a fold that throws changes nothing.
 */
export interface Aggregate<T, S, O> {
  readonly kind: "count" | "sum" | "min" | "max" | "avg" | "topN" | "reduce";
  init(value: T): S;
  add(state: S, value: T): S;
  /** Combine two states (session windows merge); absent for a user fold. */
  merge?(a: S, b: S): S;
  /** Take an event back out (an updating input retracts a row); absent when it cannot. */
  remove?(state: S, value: T): S;
  /** The same aggregate with a state that can take events back out, when this one cannot. */
  retracting?(): Aggregate<T, unknown, O>;
  result(state: S): O;
  /** The state is numbers only: 1, a number; 2, a pair `[a, b]`. Absent: any JSON value. */
  readonly width?: 1 | 2;
}

/** The aggregates a spec is built from, typed by the event type T. */
export interface Aggregates<T> {
  count(): Aggregate<T, number, number>;
  sum(of: NumberOf<T>): Aggregate<T, number, number>;
  min(of: NumberOf<T>): Aggregate<T, number, number>;
  max(of: NumberOf<T>): Aggregate<T, number, number>;
  avg(of: NumberOf<T>): Aggregate<T, [sum: number, count: number], number>;
  /**
   * A user fold with an initial value. It must return the new accumulator without changing the
   * old one, and the accumulator must survive a JSON round trip (it is checkpointed as JSON).
   */
  reduce<A>(initial: A, fold: (acc: A, value: T) => A): Aggregate<T, A, A>;
  /**
   * The `n` heaviest values of `of` (a field or a function), weighted by `weight` (default 1 per
   * event): `[{ key, weight }]`, heaviest first, ties by key. E.g. top items by quantity sold.
   */
  topN(n: number, of: KeyOf<T>, weight?: NumberOf<T>): Aggregate<T, Record<string, number>, { key: string; weight: number }[]>;
}

/** A string or number read from an event: a field's name, or a function. */
export type KeyOf<T> =
  | { [F in keyof T]-?: T[F] extends string | number ? F : never }[keyof T] & string
  | ((value: T) => string | number);

// biome-ignore lint: the spec's parts differ in state and output types
export type AnyAggregate<T> = Aggregate<T, any, any>;

/** A spec: output column name to aggregate. `key` is reserved for the row's key. */
export type AggregateSpec<T> = { readonly [column: string]: AnyAggregate<T> } & { readonly key?: never };

/** The row an aggregate step emits for a key: the key plus one column per aggregate. */
export type AggregateRow<K, Spec> =
  & { readonly key: K }
  & {
    readonly [C in keyof Spec]: Spec[C] extends Aggregate<never, unknown, infer O> ? O : never;
  };

function reader<T>(of: NumberOf<T>): (value: T) => number {
  if (typeof of === "function") return of;
  return (value) => (value as Record<string, number>)[of]!;
}

/** The builder handed to a spec function. */
export function aggregates<T>(): Aggregates<T> {
  return {
    count: () => ({
      kind: "count",
      width: 1,
      init: () => 1,
      add: (n) => n + 1,
      remove: (n) => n - 1,
      merge: (a, b) => a + b,
      result: (n) => n,
    }),
    sum(of) {
      const read = reader(of);
      return {
        kind: "sum",
        width: 1,
        init: read,
        add: (s, v) => s + read(v),
        remove: (s, v) => s - read(v),
        merge: (a, b) => a + b,
        result: (s) => s,
      };
    },
    min(of) {
      const read = reader(of);
      return {
        kind: "min",
        width: 1,
        init: read,
        add: (s, v) => Math.min(s, read(v)),
        merge: Math.min,
        retracting: () => extremum("min", read, (values) => Math.min(...values)),
        result: (s) => s,
      };
    },
    max(of) {
      const read = reader(of);
      return {
        kind: "max",
        width: 1,
        init: read,
        add: (s, v) => Math.max(s, read(v)),
        merge: Math.max,
        retracting: () => extremum("max", read, (values) => Math.max(...values)),
        result: (s) => s,
      };
    },
    avg(of) {
      const read = reader(of);
      return {
        kind: "avg",
        width: 2,
        init: (v) => [read(v), 1],
        add: (s, v) => [s[0] + read(v), s[1] + 1],
        remove: (s, v) => [s[0] - read(v), s[1] - 1],
        merge: (a, b) => [a[0] + b[0], a[1] + b[1]],
        result: (s) => s[0] / s[1],
      };
    },
    topN(n, of, weight) {
      const name = typeof of === "function" ? of : (value: T) => (value as Record<string, string | number>)[of]!;
      const read = weight === undefined ? () => 1 : reader(weight);
      const add = (counts: Record<string, number>, v: T) => {
        const key = String(name(v));
        return { ...counts, [key]: (counts[key] ?? 0) + read(v) };
      };
      return {
        kind: "topN",
        init: (v) => add({}, v),
        add,
        merge: (a, b) => {
          const sum = { ...a };
          for (const [key, w] of Object.entries(b)) sum[key] = (sum[key] ?? 0) + w;
          return sum;
        },
        retracting: () => retractingTopN(n, name, read),
        result: (counts) => ranked(Object.entries(counts), n),
      };
    },
    reduce: (initial, fold) => ({
      kind: "reduce",
      init: (v) => fold(initial, v),
      add: fold,
      result: (acc) => acc,
    }),
  };
}

/** The `n` heaviest of `[key, weight]`, heaviest first, ties by key. */
function ranked(entries: [string, number][], n: number): { key: string; weight: number }[] {
  return entries
    .map(([key, weight]) => ({ key, weight }))
    .sort((x, y) => y.weight - x.weight || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
    .slice(0, n);
}

/**
 * min or max over an updating input: the state is a multiset (value to how many rows hold it),
 * so that when the extreme row is retracted the next one takes its place.
 */
function extremum<T>(
  kind: "min" | "max",
  read: (value: T) => number,
  pick: (values: number[]) => number,
): Aggregate<T, Record<string, number>, number> {
  const add = (bag: Record<string, number>, v: T) => {
    const k = String(read(v));
    return { ...bag, [k]: (bag[k] ?? 0) + 1 };
  };
  return {
    kind,
    init: (v) => add({}, v),
    add,
    remove(bag, v) {
      const k = String(read(v));
      const next = { ...bag, [k]: (bag[k] ?? 0) - 1 };
      if (next[k]! <= 0) delete next[k];
      return next;
    },
    result: (bag) => pick(Object.keys(bag).map(Number)),
  };
}

/** topN over an updating input: per value its weight and how many rows add to it. */
function retractingTopN<T>(
  n: number,
  name: (value: T) => string | number,
  read: (value: T) => number,
): Aggregate<T, Record<string, [weight: number, rows: number]>, { key: string; weight: number }[]> {
  const change = (counts: Record<string, [number, number]>, v: T, sign: 1 | -1) => {
    const key = String(name(v));
    const [w, rows] = counts[key] ?? [0, 0];
    const next = { ...counts, [key]: [w + sign * read(v), rows + sign] as [number, number] };
    if (next[key]![1] <= 0) delete next[key];
    return next;
  };
  return {
    kind: "topN",
    init: (v) => change({}, v, 1),
    add: (counts, v) => change(counts, v, 1),
    remove: (counts, v) => change(counts, v, -1),
    result: (counts) => ranked(Object.entries(counts).map(([key, [w]]) => [key, w]), n),
  };
}

/**
 * A spec compiled for the hot path: the state of a key is one array with a slot per column.
 * `add` returns the next state array (a throwing fold leaves the previous one intact); `row`
 * builds the output row.
 */
export interface CompiledAggregate<T> {
  readonly columns: readonly string[];
  init(value: T): unknown[];
  add(state: unknown[], value: T): unknown[];
  /** Whether every part can merge (`merge` throws otherwise). */
  readonly mergeable: boolean;
  merge(a: unknown[], b: unknown[]): unknown[];
  /**
   * Compiled for an updating input only: take a retracted row back out. The state then ends with
   * the number of rows in it; `undefined` when none is left (the key is gone).
   */
  remove(state: unknown[], value: T): unknown[] | undefined;
  row(key: unknown, state: unknown[]): Record<string, unknown>;
  /**
   * When every part's state is numbers (count, sum, min, max, avg): the state packed as numbers,
   * for the keyed state to keep in a Float64Array instead of an array per key.
   */
  readonly layout?: NumericLayout<unknown[]>;
}

/**
 * The numeric layout of a state array of `parts` (plus the trailing row count over an updating
 * input), or undefined if a part's state is not numbers. A part of width 2 is a pair `[a, b]`.
 */
function numericLayout<T>(parts: readonly AnyAggregate<T>[], rowCount: boolean): NumericLayout<unknown[]> | undefined {
  if (!parts.every((p) => p.width !== undefined)) return undefined;
  const widths = parts.map((p) => p.width!);
  const slots = parts.length + (rowCount ? 1 : 0);
  if (rowCount) widths.push(1);
  const width = widths.reduce((a, b) => a + b, 0);
  const number = (v: unknown): number => {
    if (typeof v === "number") return v;
    if (v === null) return Number.NaN; // NaN and infinities were written to JSON as null
    throw new Error(`an aggregate's state holds ${JSON.stringify(v)} where a number belongs`);
  };
  const scratch = new Float64Array(width);
  return {
    width,
    read(from, at) {
      const state = new Array<unknown>(slots);
      for (let i = 0, o = at; i < slots; i++) {
        if (widths[i] === 1) state[i] = from[o++];
        else {
          state[i] = [from[o], from[o + 1]];
          o += 2;
        }
      }
      return state;
    },
    write(state, into, at) {
      // Check every number before storing any: a throw leaves the slot as it was.
      for (let i = 0, o = 0; i < slots; i++) {
        if (widths[i] === 1) scratch[o++] = number(state[i]);
        else {
          const pair = state[i] as readonly unknown[];
          scratch[o++] = number(pair[0]);
          scratch[o++] = number(pair[1]);
        }
      }
      into.set(scratch, at);
    },
  };
}

/**
 * Compile a spec. `updating`: the input is a changelog (rows are retracted as well as added), so
 * every part must be able to take a row back out: count, sum and avg can; min, max and topN keep
 * a multiset; a user `reduce` cannot (a ConfigError names the column).
 */
export function compileAggregate<T>(spec: AggregateSpec<T>, updating = false): CompiledAggregate<T> {
  const columns = Object.keys(spec);
  const parts = columns.map((c) => {
    const part = spec[c]!;
    if (!updating || part.remove) return part;
    if (part.retracting) return part.retracting();
    throw new ConfigError({
      message: `column "${c}": a ${part.kind} cannot take back a row, and this aggregate reads an updating input`,
      hint: "over the rows of another aggregate use count, sum, avg, min, max or topN",
    });
  });
  const n = parts.length;
  const row = (key: unknown, state: unknown[]) => {
    const out: Record<string, unknown> = { key };
    for (let i = 0; i < n; i++) out[columns[i]!] = parts[i]!.result(state[i]);
    return out;
  };
  if (updating) {
    return {
      columns,
      init(value) {
        const state = new Array<unknown>(n + 1);
        for (let i = 0; i < n; i++) state[i] = parts[i]!.init(value);
        state[n] = 1;
        return state;
      },
      add(state, value) {
        const next = new Array<unknown>(n + 1);
        for (let i = 0; i < n; i++) next[i] = parts[i]!.add(state[i], value);
        next[n] = (state[n] as number) + 1;
        return next;
      },
      remove(state, value) {
        if ((state[n] as number) <= 1) return undefined;
        const next = new Array<unknown>(n + 1);
        for (let i = 0; i < n; i++) next[i] = parts[i]!.remove!(state[i], value);
        next[n] = (state[n] as number) - 1;
        return next;
      },
      mergeable: false,
      merge() {
        throw new Error("an aggregate over an updating input does not merge");
      },
      row,
      layout: numericLayout(parts, true),
    };
  }
  return {
    columns,
    init(value) {
      const state = new Array<unknown>(n);
      for (let i = 0; i < n; i++) state[i] = parts[i]!.init(value);
      return state;
    },
    add(state, value) {
      const next = new Array<unknown>(n);
      for (let i = 0; i < n; i++) next[i] = parts[i]!.add(state[i], value);
      return next;
    },
    mergeable: parts.every((p) => p.merge !== undefined),
    merge(a, b) {
      const next = new Array<unknown>(n);
      for (let i = 0; i < n; i++) next[i] = parts[i]!.merge!(a[i], b[i]);
      return next;
    },
    remove() {
      throw new Error("this aggregate reads an append-only input: nothing is retracted");
    },
    row,
    layout: numericLayout(parts, false),
  };
}
