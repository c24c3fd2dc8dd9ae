/**
 * The groups a query service shows: a GroupWatch (src/serve/group-watch.ts) of every pipeline
 * group on the server, found the way the Catalog finds tables (src/serve/followed.ts): by listing
 * the KV buckets again every `refreshMs` (a pipeline whose workers start after the service shows up then). A group
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
import { Followed } from "./followed.ts";
import { GroupWatch } from "./group-watch.ts";

export interface GroupsOptions {
  readonly clock?: Clock;
  /** How often to look for new groups, in ms (default 5000; 0: never). */
  readonly refreshMs?: number;
  /** For members whose heartbeat does not carry their timeout (default 5000 ms). */
  readonly memberTimeoutMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export class Groups extends Followed<GroupWatch> {
  /** Follow every group on the server (each read in full before this resolves). */
  static async open(nc: NatsConnection, options: GroupsOptions = {}): Promise<Groups> {
    const clock = options.clock ?? systemClock;
    const groups = new Groups({
      what: "group",
      clock,
      refreshMs: options.refreshMs,
      list: async () => {
        const found: string[] = [];
        for await (const status of new Kvm(nc).list()) {
          const pipeline = pipelineOfGroupBucket(status.bucket);
          if (pipeline !== undefined) found.push(pipeline);
        }
        return found;
      },
      open: (pipeline) =>
        GroupWatch.open(nc, pipeline, {
          clock,
          log: options.log,
          ...(options.memberTimeoutMs === undefined ? {} : { memberTimeoutMs: options.memberTimeoutMs }),
        }),
      describe: (watch) => ({ members: watch.answer().members.length }),
      log: options.log,
    });
    await groups.start();
    return groups;
  }

  /** The pipelines whose groups are followed, sorted. */
  pipelines(): string[] {
    return this.names();
  }
}
