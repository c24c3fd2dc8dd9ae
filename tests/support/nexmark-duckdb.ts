/**
 * DuckDB (in memory) loaded with Nexmark events: the SQL oracle the pipelines are compared with.
 * One table per kind of event (`person`, `auction`, `bid`), a column per field of events.ts, plus
 * `n`: the event's position in the generated sequence. Integers are BIGINT; results come back as
 * plain objects with numbers (BIGINT and HUGEINT converted, exact below 2^53).
 *
 * @example
 * const db = await nexmarkDuckDb(events);
 * const rows = await db.rows(q2Sql); // [{ auction: 1107, price: 4411 }, ...]
 * db.close();
 */
import { expect } from "vitest";
import { DuckDBInstance } from "@duckdb/node-api";
import type { DuckDBAppender } from "@duckdb/node-api";
import type { NexmarkEvent, NexmarkEventType } from "../../examples/nexmark/events.ts";

type Column = readonly [name: string, type: "BIGINT" | "VARCHAR"];

const tables: Record<NexmarkEventType, readonly Column[]> = {
  person: [
    ["id", "BIGINT"],
    ["name", "VARCHAR"],
    ["emailAddress", "VARCHAR"],
    ["creditCard", "VARCHAR"],
    ["city", "VARCHAR"],
    [
      "state",
      "VARCHAR",
    ],
    ["dateTime", "BIGINT"],
    ["extra", "VARCHAR"],
  ],
  auction: [
    ["id", "BIGINT"],
    ["itemName", "VARCHAR"],
    ["description", "VARCHAR"],
    ["initialBid", "BIGINT"],
    ["reserve", "BIGINT"],
    [
      "dateTime",
      "BIGINT",
    ],
    ["expires", "BIGINT"],
    ["seller", "BIGINT"],
    ["category", "BIGINT"],
    ["extra", "VARCHAR"],
  ],
  bid: [["auction", "BIGINT"], ["bidder", "BIGINT"], ["price", "BIGINT"], ["dateTime", "BIGINT"], ["extra", "VARCHAR"]],
};

export interface NexmarkDuckDb {
  /** Run a query; every row as an object of numbers and strings. */
  rows(sql: string): Promise<Record<string, unknown>[]>;
  close(): void;
}

export async function nexmarkDuckDb(events: Iterable<NexmarkEvent>): Promise<NexmarkDuckDb> {
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  const appenders = {} as Record<NexmarkEventType, DuckDBAppender>;
  for (const [table, columns] of Object.entries(tables) as [NexmarkEventType, readonly Column[]][]) {
    await connection.run(`CREATE TABLE ${table} (n BIGINT, ${columns.map(([c, t]) => `${c} ${t}`).join(", ")})`);
    appenders[table] = await connection.createAppender(table);
  }
  let n = 0;
  const appended: Record<NexmarkEventType, number> = { person: 0, auction: 0, bid: 0 };
  for (const event of events) {
    appended[event.type]++;
    const appender = appenders[event.type];
    appender.appendBigInt(BigInt(n++));
    const fields = event as unknown as Record<string, number | string>;
    for (const [column, type] of tables[event.type]) {
      const value = fields[column]!;
      if (type === "BIGINT") appender.appendBigInt(BigInt(value));
      else appender.appendVarchar(String(value));
    }
    appender.endRow();
  }
  for (const appender of Object.values(appenders)) appender.closeSync();
  const rows = async (sql: string) => {
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJS().map((row) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]))
    );
  };
  // The oracle holds every event, each once: a table per kind with as many rows as were appended.
  for (const table of Object.keys(tables) as NexmarkEventType[]) {
    expect(await rows(`SELECT count(*) AS c, count(DISTINCT n) AS d FROM ${table}`)).toEqual([
      { c: appended[table], d: appended[table] },
    ]);
  }
  return {
    rows,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}
