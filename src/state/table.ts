/**
 * Result tables: one KV bucket per table (`eddy-table-<name>`). Rows are stored in pages, not one
 * KV entry per row (the format: src/state/table-page.ts): a page holds the rows of one state chunk
 * of one partition of the step that writes the table, and a checkpoint rewrites the pages whose
 * chunk changed, next to the chunk itself. Per-message cost is what limits JetStream writes here
 * (measured here: ~20k acked puts/s, ~1.5M events/s packed), so a table with 100,000 busy keys costs a
 * few dozen writes per checkpoint instead of 100,000. This module creates, lists and reads them.
 *
 * @example
 * const rows = await readTable(nc, "revenue_by_store");
 * const one = await readRow(nc, "revenue_by_store", "store-1");
 */
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { ConfigError, StateStoreError } from "../core/errors.ts";
import type { Key } from "../core/partition.ts";
import { tableBucket, tableOfBucket } from "../core/names.ts";
import { waitForLeader } from "../log/streams.ts";
import { keysOf, newestRevision } from "./bucket.ts";
import {
  chunkOfPageKey,
  decodeIndex,
  decodeMeta,
  decodePage,
  encodeMeta,
  indexKey,
  layoutPages,
  metaKey,
  type Page,
  parseEntryKey,
  placementOf,
  type TableMeta,
} from "./table-page.ts";

/** Create a table's bucket (if missing) and record which step writes it. */
export async function createTable(nc: NatsConnection, name: string, meta: TableMeta, replicas = 1): Promise<void> {
  const kv = await new Kvm(nc).create(tableBucket(name), { history: 1, storage: "file", replicas });
  if (replicas > 1) await waitForLeader(await jetstreamManager(nc), `KV_${tableBucket(name)}`);
  await kv.put(metaKey, encodeMeta(meta));
}

export async function openTable(nc: NatsConnection, name: string): Promise<KV> {
  try {
    const kv = await new Kvm(nc).open(tableBucket(name), { bindOnly: true });
    await kv.status(); // binding does not check that the bucket exists; this does
    return kv;
  } catch (cause) {
    if (cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.StreamNotFound) {
      throw new ConfigError({
        message: `there is no result table "${name}" (no KV bucket ${tableBucket(name)})`,
        hint: "check the name with `eddy query` (no arguments lists the tables), or start the pipeline that writes it",
      });
    }
    throw new StateStoreError({ key: tableBucket(name), message: `cannot open result table "${name}": ${String(cause)}`, cause });
  }
}

async function getEntry<T>(kv: KV, key: string, decode: (bytes: Uint8Array) => T): Promise<T | undefined> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT") return undefined;
  return decode(entry.value);
}

/** One row by key, or undefined. */
export async function readRow<R = Record<string, unknown>>(nc: NatsConnection, name: string, key: Key): Promise<R | undefined> {
  const kv = await openTable(nc, name);
  const meta = await getEntry(kv, metaKey, decodeMeta);
  if (!meta) return undefined;
  const placement = placementOf(meta, key);
  // A page may be replaced by a finer layout between the two reads: then read the index again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const index = await getEntry(kv, indexKey(placement.partition), decodeIndex);
    if (!index) return undefined;
    const page = await getEntry(kv, placement.page(index.chunkBits), decodePage);
    if (page) return page.rows.find(([k]) => k === key)?.[1] as R | undefined;
  }
  return undefined;
}

/**
 * The pages of one partition in its current layout, as written (for an operator that keeps its
 * table rows itself, at recovery): the layout's chunk bits and each page's rows.
 */
export async function readPartitionPages(
  nc: NatsConnection,
  bucket: string,
  partition: number,
): Promise<{ chunkBits: number; pages: Map<number, Page> } | undefined> {
  const kv = await new Kvm(nc).open(bucket, { bindOnly: true });
  const index = await getEntry(kv, indexKey(partition), decodeIndex);
  if (!index) return undefined;
  const pages = new Map<number, Page>();
  const keys = await keysOf(nc, bucket, layoutPages(partition, index.chunkBits));
  await Promise.all(
    keys.map(async (key) => {
      const page = await getEntry(kv, key, decodePage);
      const chunk = chunkOfPageKey(key, partition, index.chunkBits);
      if (page && chunk !== undefined) pages.set(chunk, page);
    }),
  );
  return { chunkBits: index.chunkBits, pages };
}

/** Remove a partition's pages of layout `chunkBits` from a table bucket (a newer layout's index is written). */
export async function purgePages(nc: NatsConnection, bucket: string, partition: number, chunkBits: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${layoutPages(partition, chunkBits)}` });
}

/** Every row of the table: a snapshot through a KV watch of the last values. */
export async function readTable<R = Record<string, unknown>>(nc: NatsConnection, name: string): Promise<R[]> {
  const kv = await openTable(nc, name);
  const entries = new Map<string, Uint8Array>();
  const iter = await kv.watch();
  const newest = await newestRevision(nc, tableBucket(name)).catch((error) => {
    iter.stop();
    throw error;
  });
  if (newest === 0) {
    iter.stop();
    return [];
  }
  for await (const entry of iter) {
    if (entry.operation === "PUT") entries.set(entry.key, entry.value);
    else entries.delete(entry.key);
    if (entry.delta === 0 || entry.revision >= newest) break;
  }
  iter.stop();
  return rowsOf<R>(entries);
}

/** The rows in a table bucket's entries: the pages of each partition's current layout. */
export function rowsOf<R>(entries: ReadonlyMap<string, Uint8Array>): R[] {
  const layout = new Map<number, number>();
  for (const [key, value] of entries) {
    const entry = parseEntryKey(key);
    if (entry?.kind === "index") layout.set(entry.partition, decodeIndex(value).chunkBits);
  }
  const rows: R[] = [];
  for (const [key, value] of entries) {
    const entry = parseEntryKey(key);
    if (entry?.kind !== "page") continue;
    if (layout.get(entry.partition) !== entry.chunkBits) continue; // a page of a replaced layout
    for (const [, row] of decodePage(value).rows) rows.push(row as R);
  }
  return rows;
}

/** The names of all result tables on the server. */
export async function listTables(nc: NatsConnection): Promise<string[]> {
  const names: string[] = [];
  for await (const status of new Kvm(nc).list()) {
    const table = tableOfBucket(status.bucket);
    if (table !== undefined) names.push(table);
  }
  return names.sort();
}
