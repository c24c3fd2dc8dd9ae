/**
 * Who holds a group's leases, read from its bucket, and whether they are shared as the balance
 * promises: every partition held, all of a partition number's steps by one worker, the workers'
 * counts of partition numbers at most one apart.
 *
 * @example
 * await waitFor(() => balancedOver(nc, "coffee-shop", ["w1", "w2"], coffeeShopActors));
 * (await leaseHolders(nc, "coffee-shop")).get("w1"); // ["by-store.0", "store-revenue.0", ...]
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { readGroup } from "../../src/cluster/group.ts";

/** Each lease holder's partitions (`<step>.<partition>`), sorted. */
export async function leaseHolders(nc: NatsConnection, pipelineId: string): Promise<Map<string, string[]>> {
  const group = await readGroup(nc, pipelineId);
  const held = new Map<string, string[]>();
  for (const [partition, owner] of Object.entries(group?.owners ?? {})) held.set(owner, [...(held.get(owner) ?? []), partition]);
  for (const list of held.values()) list.sort();
  return held;
}

/** Exactly `ids` hold all `actors` partitions, each partition number by one of them, their shares at most one number apart. */
export async function balancedOver(
  nc: NatsConnection,
  pipelineId: string,
  ids: readonly string[],
  actors: number,
): Promise<boolean> {
  const held = await leaseHolders(nc, pipelineId);
  if (held.size !== ids.length || !ids.every((id) => held.has(id))) return false;
  if ([...held.values()].reduce((n, list) => n + list.length, 0) !== actors) return false;
  const numberOf = (key: string) => key.slice(key.lastIndexOf(".") + 1);
  const holderOf = new Map<string, string>();
  for (const [id, list] of held) {
    for (const key of list) {
      const other = holderOf.get(numberOf(key));
      if (other !== undefined && other !== id) return false;
      holderOf.set(numberOf(key), id);
    }
  }
  const shares = ids.map((id) => new Set(held.get(id)!.map(numberOf)).size);
  return Math.max(...shares) - Math.min(...shares) <= 1;
}
