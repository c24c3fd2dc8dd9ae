/**
 * KV buckets as Eddy reads them: when a watch of a bucket has delivered what it held.
 *
 * @example
 * const watch = await kv.watch();
 * const newest = await newestRevision(nc, "menu"); // then: caught up at entry.revision >= newest
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * The revision of the newest entry a KV bucket holds (0: none). A watch started before this was
 * read has delivered the bucket's contents once it delivers an entry at or past it. (A watch's
 * `delta === 0` alone is not enough: while pages are being written and purged, the last entry of
 * its initial pass may never say 0.)
 */
export async function newestRevision(nc: NatsConnection, bucket: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const newest = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.>` }).catch(() => undefined);
  return newest?.seq ?? 0;
}
