/**
 * The tables a query service serves: a replica of every result table on the server. Tables that
 * appear later (a pipeline started after the service) are found by listing the buckets again
 * every `refreshMs`; a table whose watch ended (its bucket was deleted) is dropped (src/serve/followed.ts).
 * Lookups are synchronous: a request never waits for a table to be opened.
 *
 * @example
 * const catalog = await Catalog.open(nc);
 * catalog.get("revenue_by_store")?.get("store-1");
 * await catalog.close();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, systemClock } from "../core/clock.ts";
import { listTables } from "../state/table.ts";
import { Followed } from "./followed.ts";
import { TableReplica } from "./replica.ts";

export interface CatalogOptions {
  readonly clock?: Clock;
  /** How often to look for new tables, in ms (default 5000; 0: never). */
  readonly refreshMs?: number;
  /** Serve only these tables (default: all). */
  readonly tables?: readonly string[];
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export class Catalog extends Followed<TableReplica> {
  /** Open a replica of every result table (each read in full before this resolves). */
  static async open(nc: NatsConnection, options: CatalogOptions = {}): Promise<Catalog> {
    const clock = options.clock ?? systemClock;
    const catalog = new Catalog({
      what: "table",
      clock,
      refreshMs: options.refreshMs,
      list: async () => options.tables ?? (await listTables(nc)),
      open: (name) => TableReplica.open(nc, name, { clock }),
      describe: (replica) => ({ rows: replica.size }),
      log: options.log,
    });
    await catalog.start();
    return catalog;
  }
}
