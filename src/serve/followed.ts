/**
 * What a query service follows by name, found by listing the server again every `refreshMs`: the
 * Catalog's table replicas (src/serve/catalog.ts) and the groups of pipelines (src/serve/groups.ts).
 * Each one is opened once (a failure is logged and tried again at the next listing) and dropped
 * when it ends (its bucket was deleted). Lookups are synchronous: a request never waits for one to
 * be opened.
 *
 * @example
 * class Catalog extends Followed<TableReplica> {} // with its own `open`, which calls `start()`
 * catalog.get("revenue_by_store")?.get("store-1");
 * await catalog.close();
 */
import type { Clock } from "../core/clock.ts";

/** One thing followed: it ends by itself when what it follows is gone. */
export interface Follower {
  readonly ended: Promise<void>;
  close(): void;
}

export interface FollowedOptions<T extends Follower> {
  /** What is followed, naming the log events (`table`: `table-opened`, `table-closed`, `table-open-failed`). */
  readonly what: string;
  readonly clock: Clock;
  /** How often to list again, in ms (default 5000; 0: never). */
  readonly refreshMs?: number | undefined;
  /** The names on the server now. */
  readonly list: () => Promise<readonly string[]>;
  /** Open one, read in full (undefined: it is not there after all). */
  readonly open: (name: string) => Promise<T | undefined>;
  /** What the log says of one opened. */
  readonly describe?: (followed: T) => Record<string, unknown>;
  readonly log?: ((event: string, fields: Record<string, unknown>) => void) | undefined;
}

export class Followed<T extends Follower> {
  readonly #followed = new Map<string, T>();
  readonly #opening = new Set<string>();
  #timer: unknown;
  #closed = false;

  protected constructor(private readonly followOptions: FollowedOptions<T>) {}

  /** The first listing (each one opened in full before this resolves), then one every `refreshMs`. */
  protected async start(): Promise<void> {
    await this.refresh();
    this.#schedule();
  }

  /** List again and open those not followed yet. */
  async refresh(): Promise<void> {
    const names = await this.followOptions.list();
    const fresh = names.filter((name) => !this.#followed.has(name) && !this.#opening.has(name));
    await Promise.all(fresh.map((name) => this.#open(name)));
  }

  get(name: string): T | undefined {
    return this.#followed.get(name);
  }

  /** The names followed, sorted. */
  names(): string[] {
    return [...this.#followed.keys()].sort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.followOptions.clock.clearTimeout(this.#timer);
    const followed = [...this.#followed.values()];
    this.#followed.clear();
    for (const f of followed) f.close();
    await Promise.all(followed.map((f) => f.ended));
  }

  async #open(name: string): Promise<void> {
    const { what, log } = this.followOptions;
    this.#opening.add(name);
    try {
      const followed = await this.followOptions.open(name);
      if (!followed) return;
      if (this.#closed) return followed.close();
      this.#followed.set(name, followed);
      log?.(`${what}-opened`, { [what]: name, ...this.followOptions.describe?.(followed) });
      void followed.ended.then(() => {
        if (this.#followed.get(name) === followed) this.#followed.delete(name);
        if (!this.#closed) log?.(`${what}-closed`, { [what]: name });
      });
    } catch (error) {
      log?.(`${what}-open-failed`, { [what]: name, error: String(error) });
    } finally {
      this.#opening.delete(name);
    }
  }

  #schedule(): void {
    const every = this.followOptions.refreshMs ?? 5000;
    if (every <= 0 || this.#closed) return;
    this.#timer = this.followOptions.clock.setTimeout(() => {
      this.refresh()
        .catch((error) => this.followOptions.log?.("refresh-failed", { error: String(error) }))
        .finally(() => this.#schedule());
    }, every);
  }
}
