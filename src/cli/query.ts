/**
 * `eddy query <table> [key]`: print a result table's rows (or one row) as JSON lines; with no
 * table, list the tables.
 */
import { ConfigError } from "../core/errors.ts";
import type { Platform } from "../platform/platform.ts";
import { listTables, readRow, readTable } from "../state/table.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { natsFlags, withNats } from "./target.ts";

export const queryCommand: CommandSpec = {
  name: "query",
  summary: "Print the rows of a result table as JSON lines, or one row by key; with no table, list the tables.",
  positionals: [
    { name: "table", help: "result table name", required: false },
    { name: "key", help: "row key", required: false },
  ],
  flags: { ...natsFlags },
  examples: ["eddy query revenue_by_store", "eddy query revenue_by_store store-1", "eddy query"],
};

export async function query(platform: Platform, { flags, positionals }: Parsed): Promise<number> {
  const [table, key] = positionals;
  return withNats(platform, flags, async (nc) => {
    if (!table) {
      for (const name of await listTables(nc)) platform.out(`${name}\n`);
      return 0;
    }
    if (key !== undefined) {
      const row = await readRow(nc, table, key);
      if (!row) {
        throw new ConfigError({
          message: `table "${table}" has no row with key "${key}"`,
          hint: `list its rows with \`eddy query ${table}\``,
        });
      }
      platform.out(`${JSON.stringify(row)}\n`);
      return 0;
    }
    const rows = await readTable(nc, table);
    rows.sort((a, b) => String(a.key).localeCompare(String(b.key)));
    for (const row of rows) platform.out(`${JSON.stringify(row)}\n`);
    return 0;
  });
}
