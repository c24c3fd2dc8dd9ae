/**
 * Reading a TopN row in rank order. A `topN` aggregate's column holds `[{ key, weight }]`,
 * heaviest first, ties by key (src/pipeline/aggregate.ts); this finds that column in a row and
 * numbers its entries. In a windowed table (rows keyed `<key>|<windowStart>`) a bare key means
 * the key's latest window.
 *
 * @example
 * const found = rankedRow(replica, "store-1"); // the latest 5-minute window of store-1
 * rankOrder(found.row, undefined, 3); // { column: "top", entries: [{ rank: 1, key: "latte", weight: 31 }, ...] }
 */
import type { TableReplica } from "./replica.ts";

export interface RankedEntry {
  readonly rank: number;
  readonly key: string;
  readonly weight: number;
}

/** A column whose value is a TopN result: an array of `{ key, weight }`. */
function isTopN(value: unknown): value is { key: string; weight: number }[] {
  return Array.isArray(value) &&
    value.every((e) =>
      typeof e === "object" && e !== null && (typeof e.key === "string" || typeof e.key === "number") &&
      typeof e.weight === "number"
    );
}

/** The TopN columns of a row, by name. */
export function topNColumns(row: unknown): string[] {
  if (typeof row !== "object" || row === null) return [];
  return Object.entries(row).filter(([name, value]) => name !== "key" && isTopN(value)).map(([name]) => name);
}

/**
 * The row a rank read is about: the row keyed `key`, or in a windowed table whose rows are keyed
 * `<key>|<windowStart>`, the one with the latest window start.
 */
export function rankedRow(replica: TableReplica, key: string): { rowKey: string; row: unknown } | undefined {
  const row = replica.get(key);
  if (row !== undefined) return { rowKey: key, row };
  if (!replica.meta?.windowed) return undefined;
  // "|" is 0x7C and "}" 0x7D: the range holds exactly the keys that start with `<key>|`.
  const { rows } = replica.range({ from: `${key}|`, to: `${key}}`, limit: Number.MAX_SAFE_INTEGER });
  let latest: { rowKey: string; row: unknown; start: number } | undefined;
  for (const r of rows) {
    const start = Number(String(r.key).slice(key.length + 1));
    if (Number.isFinite(start) && (!latest || start > latest.start)) latest = { rowKey: String(r.key), row: r.row, start };
  }
  return latest && { rowKey: latest.rowKey, row: latest.row };
}

export type RankOrder =
  | { readonly column: string; readonly entries: readonly RankedEntry[] }
  | { readonly error: string };

/** The entries of a row's TopN column (`column`, or its only one), numbered from 1, at most `limit`. */
export function rankOrder(row: unknown, column: string | undefined, limit = Number.MAX_SAFE_INTEGER): RankOrder {
  const columns = topNColumns(row);
  if (column === undefined) {
    if (columns.length === 0) return { error: "the row has no TopN column (an array of { key, weight })" };
    if (columns.length > 1) return { error: `the row has several TopN columns (${columns.join(", ")}): pass ?column=` };
    column = columns[0]!;
  } else if (!columns.includes(column)) {
    return {
      error: `column "${column}" is not a TopN column of the row${columns.length ? `; it has ${columns.join(", ")}` : ""}`,
    };
  }
  const values = (row as Record<string, { key: string | number; weight: number }[]>)[column]!;
  const entries = values.slice(0, limit).map((e, i) => ({ rank: i + 1, key: String(e.key), weight: e.weight }));
  return { column, entries };
}
