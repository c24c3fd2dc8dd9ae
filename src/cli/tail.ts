/**
 * `eddy tail <table> [key]`: follow a result table, printing each row change as it is applied to
 * an in-memory replica kept current by a KV watch (src/serve/replica.ts, the same page decoding
 * the query API serves from), until Ctrl-C or SIGTERM (exit 0). JSON lines, or aligned human
 * lines when stdout is a terminal (`--format` to choose).
 */
import { ConfigError } from "../core/errors.ts";
import type { Key } from "../core/partition.ts";
import type { Platform } from "../platform/platform.ts";
import { systemClock } from "../core/clock.ts";
import { type RowChange, TableReplica } from "../serve/replica.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { natsFlags, withNats } from "./target.ts";

export const tailCommand: CommandSpec = {
  name: "tail",
  summary: "Follow a result table (or one row): print each change as it happens, until Ctrl-C.",
  positionals: [
    { name: "table", help: "result table name", required: true },
    { name: "key", help: "follow only this row key", required: false },
  ],
  flags: {
    ...natsFlags,
    current: { type: "boolean", help: 'print the current rows (or row) first, as op "current"' },
    format: { type: "string", help: "json or human (default: human when stdout is a terminal, else json)" },
  },
  examples: [
    "eddy tail revenue_by_store",
    "eddy tail revenue_by_store store-1 --current",
    "eddy tail top_items_per_store --format json | jq .",
  ],
};

/** A printed change: the replica's RowChange, or a current row. */
type Line = Omit<RowChange, "op"> & { readonly op: RowChange["op"] | "current" };

export function jsonChange(change: Line): string {
  const { op, key, row, partition, checkpoint, at } = change;
  return `${JSON.stringify({ op, key, ...(row === undefined ? {} : { row }), partition, checkpoint, at })}\n`;
}

/** `12:00:01.234  upsert   store-1  {"orders":12,...}  (p2 ckpt 7)` */
export function humanChange(change: Line, now: number): string {
  const d = new Date(now);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const row = change.row === undefined ? "" : JSON.stringify(withoutKey(change.row));
  return `${time}  ${change.op.padEnd(7)}  ${String(change.key)}  ${row}  (p${change.partition} ckpt ${change.checkpoint})\n`;
}

function withoutKey(row: unknown): unknown {
  if (row === null || typeof row !== "object" || Array.isArray(row) || !("key" in row)) return row;
  const { key: _key, ...rest } = row as Record<string, unknown>;
  return rest;
}

export async function tail(platform: Platform, { flags, positionals }: Parsed): Promise<number> {
  const [table, key] = positionals as [string, string | undefined];
  const format = (flags.format as string | undefined) ?? (platform.interactive ? "human" : "json");
  if (format !== "json" && format !== "human") {
    throw new ConfigError({ message: `--format must be json or human, got "${format}"`, hint: "e.g. --format json" });
  }
  const shutdown = platform.shutdownSignal();
  const print = (change: Line) => platform.out(format === "json" ? jsonChange(change) : humanChange(change, systemClock.now()));
  return withNats(platform, flags, async (nc) => {
    const replica = await TableReplica.open(nc, table);
    try {
      const wanted = (k: Key) => key === undefined || String(k) === key;
      if (flags.current) {
        const reflects = replica.reflects();
        const current = (k: Key, row: unknown) => {
          const partition = replica.partitionOf(k) ?? 0;
          const part = replica.reflectsPartition(partition);
          print({ op: "current", key: k, row, partition, checkpoint: part.checkpoint ?? 0, at: part.at ?? reflects.at ?? 0 });
        };
        if (key !== undefined) {
          const row = replica.get(key);
          if (row !== undefined) current(key, row);
        } else {
          for (const { key: k, row } of replica.range({ limit: Number.POSITIVE_INFINITY }).rows) current(k, row);
        }
      }
      replica.subscribe((first, count) => {
        for (let seq = first; seq < first + count; seq++) {
          if (wanted(replica.changes.keyOf(seq))) print(replica.changes.change(seq));
        }
      });
      const ended = await Promise.race([shutdown.then(() => false), replica.ended.then(() => true)]);
      if (ended) {
        throw new ConfigError({
          message: `the table "${table}" went away while following it (its bucket was deleted, or the connection closed)`,
          hint: `check it with \`eddy query ${table}\`, then tail it again`,
        });
      }
      return 0;
    } finally {
      replica.close();
    }
  });
}
