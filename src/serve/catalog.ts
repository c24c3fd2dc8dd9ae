/**
 * The tables a query service serves: a replica of every result table on the server. Tables that
 * appear later (a pipeline started after the service) are found by listing the buckets again
 * every `refreshMs`; a table whose watch ended (its bucket was deleted) is dropped. Lookups are
 * synchronous: a request never waits for a table to be opened.
 *
 * @example
 * const catalog = await Catalog.open(nc);
 * catalog.get("revenue_by_store")?.get("store-1");
 * await catalog.close();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, systemClock } from "../core/clock.ts";
import { listTables } from "../state/table.ts";
import { TableReplica } from "./replica.ts";

export interface CatalogOptions {
  readonly clock?: Clock;
  /** How often to look for new tables, in ms (default 5000; 0: never). */
  readonly refreshMs?: number;
  /** Serve only these tables (default: all). */
  readonly tables?: readonly string[];
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export class Catalog {
  readonly #replicas = new Map<string, TableReplica>();
  readonly #opening = new Set<string>();
  readonly #clock: Clock;
  #timer: unknown;
  #closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: CatalogOptions,
  ) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Open a replica of every result table (each read in full before this resolves). */
  static async open(nc: NatsConnection, options: CatalogOptions = {}): Promise<Catalog> {
    const catalog = new Catalog(nc, options);
    await catalog.refresh();
    catalog.#schedule();
    return catalog;
  }

  /** List the tables again and open replicas of new ones. */
  async refresh(): Promise<void> {
    const names = this.options.tables ?? (await listTables(this.nc));
    const fresh = names.filter((name) => !this.#replicas.has(name) && !this.#opening.has(name));
    await Promise.all(fresh.map((name) => this.#open(name)));
  }

  async #open(name: string): Promise<void> {
    this.#opening.add(name);
    try {
      const replica = await TableReplica.open(this.nc, name, { clock: this.#clock });
      if (this.#closed) return replica.close();
      this.#replicas.set(name, replica);
      this.options.log?.("table-opened", { table: name, rows: replica.size });
      void replica.ended.then(() => {
        if (this.#replicas.get(name) === replica) this.#replicas.delete(name);
        if (!this.#closed) this.options.log?.("table-closed", { table: name });
      });
    } catch (error) {
      this.options.log?.("table-open-failed", { table: name, error: String(error) });
    } finally {
      this.#opening.delete(name);
    }
  }

  #schedule(): void {
    const every = this.options.refreshMs ?? 5000;
    if (every <= 0 || this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.refresh()
        .catch((error) => this.options.log?.("refresh-failed", { error: String(error) }))
        .finally(() => this.#schedule());
    }, every);
  }

  get(name: string): TableReplica | undefined {
    return this.#replicas.get(name);
  }

  /** The served tables' names, sorted. */
  names(): string[] {
    return [...this.#replicas.keys()].sort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    const replicas = [...this.#replicas.values()];
    this.#replicas.clear();
    for (const replica of replicas) replica.close();
    await Promise.all(replicas.map((r) => r.ended));
  }
}
