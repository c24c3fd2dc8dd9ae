/**
 * KV buckets as Eddy reads them: when a watch of a bucket has delivered what it held, and which
 * keys it holds.
 *
 * @example
 * const watch = await kv.watch();
 * const newest = await newestRevision(nc, "menu"); // then: caught up at entry.revision >= newest
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * The revision of the newest entry a KV bucket holds under `key` (a filter; default: any key; 0:
 * none). A watch started before this was
 * read has delivered the bucket's contents once it delivers an entry at or past it. (A watch's
 * `delta === 0` alone is not enough: while pages are being written and purged, the last entry of
 * its initial pass may never say 0.)
 */
export async function newestRevision(nc: NatsConnection, bucket: string, key = ">"): Promise<number> {
  const jsm = await jetstreamManager(nc);
  try {
    return (await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${key}` }))?.seq ?? 0;
  } catch (error) {
    // Only "no such message" means an empty bucket: a timeout (a stream without a leader on a
    // cluster) taken for one made a lookup table's replica start empty, and joins miss their rows.
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) return 0;
    throw error;
  }
}

/**
 * The keys of KV bucket `bucket` that match `filter` (a subject filter over keys, e.g.
 * `*.*.manifest`), deleted ones included, from the stream's subject index in one request.
 * `kv.keys()` reads them with a consumer that ends once it has caught up, which it never does
 * while the bucket is written faster than it reads (a pipeline checkpointing every few ms on a
 * loaded machine): reading the committed positions hung.
 */
export async function keysOf(nc: NatsConnection, bucket: string, filter: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: prefix + filter });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}
