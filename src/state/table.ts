/**
 * Result tables: one KV bucket per table (`eddy-table-<name>`), one entry per row, the row as
 * JSON. Writers upsert deterministic rows, coalesced per checkpoint; readers get a row by key or
 * all rows.
 *
 * @example
 * const rows = await readTable(nc, "revenue_by_store");
 * const one = await readRow(nc, "revenue_by_store", "store-1");
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { ConfigError } from "../errors.ts";
import type { Key } from "../pipeline/partition.ts";
import { tableBucket } from "../pipeline/pipeline.ts";

const decoder = new TextDecoder();

/**
 * A row key as a KV key: letters, digits, `-` and `_` stay as they are; every other byte is
 * written `=XX` (hex of its UTF-8 bytes), so any string key maps to one valid KV key and back.
 */
export function tableKey(key: Key): string {
  const s = String(key);
  if (s.length > 0 && /^[A-Za-z0-9_-]+$/.test(s)) return s;
  let out = "";
  for (const byte of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out.length > 0 ? out : "=";
}

export async function openTable(nc: NatsConnection, name: string) {
  try {
    const kv = await new Kvm(nc).open(tableBucket(name), { bindOnly: true });
    await kv.status(); // binding does not check that the bucket exists; this does
    return kv;
  } catch (cause) {
    throw new ConfigError({
      message: `there is no result table "${name}" (no KV bucket ${tableBucket(name)})`,
      hint: "check the name with `eddy query` (no arguments lists the tables), or start the pipeline that writes it",
    });
  }
}

/** One row by key, or undefined. */
export async function readRow<R = Record<string, unknown>>(nc: NatsConnection, name: string, key: Key): Promise<R | undefined> {
  const kv = await openTable(nc, name);
  const entry = await kv.get(tableKey(key));
  if (!entry || entry.operation !== "PUT") return undefined;
  return JSON.parse(decoder.decode(entry.value)) as R;
}

/** Every row of the table (a snapshot read through a KV watch of the last values). */
export async function readTable<R = Record<string, unknown>>(nc: NatsConnection, name: string): Promise<R[]> {
  const kv = await openTable(nc, name);
  const rows = new Map<string, R>();
  const status = await kv.status();
  if (status.values === 0) return [];
  const iter = await kv.watch();
  for await (const entry of iter) {
    if (entry.operation === "PUT") rows.set(entry.key, JSON.parse(decoder.decode(entry.value)) as R);
    else rows.delete(entry.key);
    if (entry.delta === 0) break;
  }
  iter.stop();
  return [...rows.values()];
}

/** The names of all result tables on the server. */
export async function listTables(nc: NatsConnection): Promise<string[]> {
  const names: string[] = [];
  for await (const status of new Kvm(nc).list()) {
    if (status.bucket.startsWith("eddy-table-")) names.push(status.bucket.slice("eddy-table-".length));
  }
  return names.sort();
}
