/**
 * The groups a query service shows: a GroupWatch (src/serve/group-watch.ts) of every pipeline
 * group on the server, found the way the Catalog finds tables: by listing the KV buckets again
 * every `refreshMs` (a pipeline whose workers start after the service shows up then). A group
 * whose bucket is deleted is dropped. Lookups are synchronous.
 *
 * @example
 * const groups = await Groups.open(nc);
 * groups.pipelines(); // ["coffee-shop"]
 * groups.get("coffee-shop")?.answer().moves; // 0 once settled
 * groups.close();
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { type Clock, systemClock } from "../core/clock.ts";
import { pipelineOfGroupBucket } from "../core/names.ts";
import { GroupWatch } from "./group-watch.ts";

export interface GroupsOptions {
  readonly clock?: Clock;
  /** How often to look for new groups, in ms (default 5000; 0: never). */
  readonly refreshMs?: number;
  /** For members whose heartbeat does not carry their timeout (default 5000 ms). */
  readonly memberTimeoutMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export class Groups {
  readonly #watches = new Map<string, GroupWatch>();
  readonly #opening = new Set<string>();
  readonly #clock: Clock;
  #timer: unknown;
  #closed = false;

  private constructor(private readonly nc: NatsConnection, private readonly options: GroupsOptions) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Follow every group on the server (each read in full before this resolves). */
  static async open(nc: NatsConnection, options: GroupsOptions = {}): Promise<Groups> {
    const groups = new Groups(nc, options);
    await groups.refresh();
    groups.#schedule();
    return groups;
  }

  /** List the buckets again and follow the groups not followed yet. */
  async refresh(): Promise<void> {
    const found: string[] = [];
    for await (const status of new Kvm(this.nc).list()) {
      const pipeline = pipelineOfGroupBucket(status.bucket);
      if (pipeline !== undefined) found.push(pipeline);
    }
    const fresh = found.filter((p) => !this.#watches.has(p) && !this.#opening.has(p));
    await Promise.all(fresh.map((p) => this.#open(p)));
  }

  async #open(pipeline: string): Promise<void> {
    this.#opening.add(pipeline);
    try {
      const watch = await GroupWatch.open(this.nc, pipeline, {
        clock: this.#clock,
        ...(this.options.memberTimeoutMs === undefined ? {} : { memberTimeoutMs: this.options.memberTimeoutMs }),
      });
      if (!watch) return;
      if (this.#closed) return watch.close();
      this.#watches.set(pipeline, watch);
      this.options.log?.("group-opened", { pipeline, members: watch.answer().members.length });
      void watch.ended.then(() => {
        if (this.#watches.get(pipeline) === watch) this.#watches.delete(pipeline);
      });
    } catch (error) {
      this.options.log?.("group-open-failed", { pipeline, error: String(error) });
    } finally {
      this.#opening.delete(pipeline);
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

  get(pipeline: string): GroupWatch | undefined {
    return this.#watches.get(pipeline);
  }

  /** The pipelines whose groups are followed, sorted. */
  pipelines(): string[] {
    return [...this.#watches.keys()].sort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    const watches = [...this.#watches.values()];
    this.#watches.clear();
    for (const watch of watches) watch.close();
    await Promise.all(watches.map((w) => w.ended));
  }
}
