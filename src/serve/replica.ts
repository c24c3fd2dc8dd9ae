/**
 * An in-memory replica of one result table, kept current by a KV watch on its bucket: a read never
 * waits on NATS. The bucket holds pages (src/state/table.ts); the replica keeps the decoded pages
 * of each partition, applies the rows of the partition's current layout, and keeps them indexed by
 * key (a Map) and in key order (a sorted array, for ranges and pages).
 *
 * A busy table rewrites nearly every page at each flush with a few rows changed: a new version of
 * a page is decoded from the previous one (only changed row lines are parsed, `decodePageFrom`)
 * and compared row by row, and the watch applies entries in slices of about a millisecond, letting
 * the event loop turn between them, so a query never waits for a whole burst of pages.
 *
 * The pure part, `ReplicaState`, applies bucket entries and returns the row changes they make; the
 * shell, `TableReplica`, feeds it from `kv.watch()` and tells subscribers about the changes.
 *
 * Key order is the order of the keys' string forms by UTF-16 code units (a number key 42 is
 * looked up and ordered as "42").
 *
 * What a replica reflects, per partition: the checkpoint number and commit-start time (`at`) of
 * the last page it applied, and when it applied it (`lastUpdate`, the replica's clock). A page is
 * written just before its checkpoint's manifest commits, so a partition reflects every checkpoint
 * before `checkpoint` completely and `checkpoint` itself at least in part.
 *
 * @example
 * const replica = await TableReplica.open(nc, "revenue_by_store");
 * replica.get("store-1"); // { key: "store-1", orders: 12, ... } or undefined, from memory
 * replica.range({ from: "store-1", limit: 10 }).rows;
 * const stop = replica.subscribe((changes) => console.log(changes));
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { type Key, keyHash, partitionOf } from "../pipeline/partition.ts";
import { tableBucket } from "../pipeline/pipeline.ts";
import { newestRevision } from "../state/bucket.ts";
import { type Clock, inSlices, systemClock } from "../runtime/clock.ts";
import { ChangeLog } from "./change-log.ts";
import {
  decodeIndex,
  decodeMeta,
  decodePageFrom,
  openTable,
  type PageLines,
  parseEntryKey,
  type TableMeta,
} from "../state/table.ts";

export interface RowChange {
  readonly op: "upsert" | "delete";
  readonly key: Key;
  /** The new row; absent on delete. */
  readonly row?: unknown;
  readonly partition: number;
  /** The checkpoint of the page that made the change. */
  readonly checkpoint: number;
  readonly at: number;
}

export interface PartitionReflects {
  readonly partition: number;
  /** Checkpoint of the last page applied; null while the partition has no page. */
  readonly checkpoint: number | null;
  /** When that checkpoint started (writer's clock); null while the partition has no page. */
  readonly at: number | null;
  /** When the replica last applied an entry of this partition (replica's clock). */
  readonly lastUpdate: number | null;
}

export interface TableReflects {
  /** The lowest checkpoint over partitions that have pages (null if none has). */
  readonly checkpoint: number | null;
  /** The earliest `at` over partitions that have pages. */
  readonly at: number | null;
  /** When the replica last applied an entry of the table. */
  readonly lastUpdate: number | null;
  readonly partitions: readonly PartitionReflects[];
}

export interface RangeQuery {
  /** First key (inclusive). */
  readonly from?: string;
  /** Key to stop before (exclusive). */
  readonly to?: string;
  /** Continue after this key (a page's last key). */
  readonly after?: string;
  readonly limit: number;
}

export interface RangeResult {
  readonly rows: readonly { readonly key: Key; readonly row: unknown }[];
  /** The last key returned when more rows follow in the range, else undefined. */
  readonly next: string | undefined;
}

interface Held {
  readonly key: Key;
  readonly row: unknown;
  readonly partition: number;
}

interface PartitionState {
  chunkBits: number | undefined;
  /** Decoded pages of every layout seen, by `<chunkBits>.<chunk>`, with their row lines. */
  readonly pages: Map<string, PageLines>;
  checkpoint: number | null;
  at: number | null;
  lastUpdate: number | null;
}

/** Above this many key additions or removals in one entry, the key order is rebuilt, not spliced. */
const spliceLimit = 64;

/** The replica's pure core: bucket entries in, row changes out. */
export class ReplicaState {
  meta: TableMeta | undefined;
  lastUpdate: number | null = null;
  readonly #partitions = new Map<number, PartitionState>();
  readonly #rows = new Map<string, Held>();
  /** Keys in order, or undefined when it must be rebuilt before the next ordered read. */
  #sorted: string[] | undefined = [];

  get size(): number {
    return this.#rows.size;
  }

  /** Apply one bucket entry (a PUT with its value, or a DEL/PURGE); return the row changes. */
  apply(key: string, operation: "PUT" | "DEL" | "PURGE", value: Uint8Array, now: number): RowChange[] {
    const entry = parseEntryKey(key);
    if (!entry) return [];
    this.lastUpdate = now;
    if (entry.kind === "meta") {
      if (operation === "PUT") this.meta = decodeMeta(value);
      return [];
    }
    const part = this.#partition(entry.partition);
    part.lastUpdate = now;
    if (entry.kind === "index") {
      const bits = operation === "PUT" ? decodeIndex(value).chunkBits : undefined;
      return bits === part.chunkBits ? [] : this.#relayout(entry.partition, part, bits);
    }
    const pageId = `${entry.chunkBits}.${entry.chunk}`;
    const previous = part.pages.get(pageId);
    const page = operation === "PUT" ? decodePageFrom(value, previous) : undefined;
    if (page) part.pages.set(pageId, page);
    else part.pages.delete(pageId);
    if (entry.chunkBits !== part.chunkBits) return []; // a page of a layout not (or no longer) current
    if (page) {
      part.checkpoint = page.checkpoint;
      part.at = page.at;
    }
    const meta = page ?? previous;
    return this.#replace(entry.partition, previous?.rows ?? [], page?.rows ?? [], meta?.checkpoint ?? 0, meta?.at ?? 0);
  }

  /** A partition's page layout changed: its rows become those of the new layout's pages. */
  #relayout(partition: number, part: PartitionState, bits: number | undefined): RowChange[] {
    const before = this.#layoutRows(part, part.chunkBits);
    part.chunkBits = bits;
    for (const id of [...part.pages.keys()]) if (Number(id.split(".")[0]) !== bits) part.pages.delete(id);
    let newest: PageLines | undefined;
    for (const page of part.pages.values()) if (!newest || page.checkpoint > newest.checkpoint) newest = page;
    part.checkpoint = newest?.checkpoint ?? null;
    part.at = newest?.at ?? null;
    return this.#replace(partition, before, this.#layoutRows(part, bits), newest?.checkpoint ?? 0, newest?.at ?? 0);
  }

  #layoutRows(part: PartitionState, bits: number | undefined): (readonly [Key, unknown])[] {
    if (bits === undefined) return [];
    const rows: (readonly [Key, unknown])[] = [];
    for (const [id, page] of part.pages) if (Number(id.split(".")[0]) === bits) rows.push(...page.rows);
    return rows;
  }

  /** Replace rows `before` by rows `after` (of one partition); return what changed. */
  #replace(
    partition: number,
    before: readonly (readonly [Key, unknown])[],
    after: readonly (readonly [Key, unknown])[],
    checkpoint: number,
    at: number,
  ): RowChange[] {
    const changes: RowChange[] = [];
    if (sameKeys(before, after)) {
      // A page rewritten with the same keys in the same order (a busy table, between layout
      // changes): compare row by row; no key is added or removed.
      for (const [key, row] of after) {
        const held = this.#rows.get(String(key));
        if (held && sameJson(held.row, row)) continue;
        if (!held) return this.#replaceKeys(partition, before, after, checkpoint, at, changes);
        this.#rows.set(String(key), { key, row, partition });
        changes.push({ op: "upsert", key, row, partition, checkpoint, at });
      }
      return changes;
    }
    return this.#replaceKeys(partition, before, after, checkpoint, at, changes);
  }

  /** `#replace` when keys may come and go (continuing after `changes`, already applied). */
  #replaceKeys(
    partition: number,
    before: readonly (readonly [Key, unknown])[],
    after: readonly (readonly [Key, unknown])[],
    checkpoint: number,
    at: number,
    changes: RowChange[],
  ): RowChange[] {
    const added: string[] = [];
    const kept = new Set<string>();
    for (const [key, row] of after) {
      const id = String(key);
      kept.add(id);
      const held = this.#rows.get(id);
      if (held && sameJson(held.row, row)) continue;
      if (!held) added.push(id);
      this.#rows.set(id, { key, row, partition });
      changes.push({ op: "upsert", key, row, partition, checkpoint, at });
    }
    const removed: string[] = [];
    for (const [key] of before) {
      const id = String(key);
      if (kept.has(id) || this.#rows.get(id)?.partition !== partition) continue;
      this.#rows.delete(id);
      removed.push(id);
      changes.push({ op: "delete", key, partition, checkpoint, at });
    }
    this.#reorder(added, removed);
    return changes;
  }

  #reorder(added: readonly string[], removed: readonly string[]): void {
    if (added.length === 0 && removed.length === 0) return;
    const sorted = this.#sorted;
    if (!sorted || added.length + removed.length > spliceLimit) {
      this.#sorted = undefined;
      return;
    }
    for (const id of removed) sorted.splice(lowerBound(sorted, id), 1);
    for (const id of added) sorted.splice(lowerBound(sorted, id), 0, id);
  }

  #order(): string[] {
    this.#sorted ??= [...this.#rows.keys()].sort();
    return this.#sorted;
  }

  #partition(partition: number): PartitionState {
    let part = this.#partitions.get(partition);
    if (!part) {
      part = { chunkBits: undefined, pages: new Map(), checkpoint: null, at: null, lastUpdate: null };
      this.#partitions.set(partition, part);
    }
    return part;
  }

  get(key: string): unknown {
    return this.#rows.get(key)?.row;
  }

  /** Every row, in key order. */
  rows(): unknown[] {
    return this.#order().map((id) => this.#rows.get(id)!.row);
  }

  range({ from, to, after, limit }: RangeQuery): RangeResult {
    const order = this.#order();
    let lo = from === undefined ? 0 : lowerBound(order, from);
    if (after !== undefined) lo = Math.max(lo, upperBound(order, after));
    const hi = to === undefined ? order.length : lowerBound(order, to);
    const end = Math.min(hi, lo + limit);
    const rows: { key: Key; row: unknown }[] = [];
    for (let i = lo; i < end; i++) {
      const held = this.#rows.get(order[i]!)!;
      rows.push({ key: held.key, row: held.row });
    }
    return { rows, next: end < hi && end > lo ? order[end - 1] : undefined };
  }

  /** The partition a key belongs to (by the same hash the writer used), if the meta is known. */
  partitionOf(key: string): number | undefined {
    return this.meta ? partitionOf(keyHash(key), this.meta.partitions) : undefined;
  }

  reflectsPartition(partition: number): PartitionReflects {
    const part = this.#partitions.get(partition);
    return { partition, checkpoint: part?.checkpoint ?? null, at: part?.at ?? null, lastUpdate: part?.lastUpdate ?? null };
  }

  reflects(): TableReflects {
    const count = Math.max(this.meta?.partitions ?? 0, ...[...this.#partitions.keys()].map((p) => p + 1));
    const partitions: PartitionReflects[] = [];
    for (let p = 0; p < count; p++) partitions.push(this.reflectsPartition(p));
    const paged = partitions.filter((p) => p.checkpoint !== null);
    return {
      checkpoint: paged.length ? Math.min(...paged.map((p) => p.checkpoint!)) : null,
      at: paged.length ? Math.min(...paged.map((p) => p.at!)) : null,
      lastUpdate: this.lastUpdate,
      partitions,
    };
  }
}

export interface ReplicaOptions {
  readonly clock?: Clock;
  /** Row changes kept for Server-Sent Events clients that reconnect (default 10,000). */
  readonly changeLogSize?: number;
}

/** The longest the watch applies entries before the event loop turns, in ms. */
const sliceMs = 1;

/** Replicas opened by this process, so that two opened in the same millisecond differ in epoch. */
let opened = 0;

/**
 * A result table's replica, kept current by a KV watch. `open` resolves once the replica holds
 * the bucket's contents as of opening; after that it follows every update.
 */
export class TableReplica {
  readonly #state = new ReplicaState();
  readonly #listeners = new Set<(changes: readonly RowChange[], firstSeq: number) => void>();
  #stop: (() => void) | undefined;
  #ended = false;
  #resolveEnded!: () => void;
  /** Resolves when the watch ends (closed, or the bucket went away). */
  readonly ended = new Promise<void>((resolve) => (this.#resolveEnded = resolve));

  /** The changes applied since the replica was read in full, numbered (Last-Event-ID resumes). */
  readonly changes: ChangeLog;

  private constructor(
    readonly name: string,
    private readonly kv: KV,
    private readonly clock: Clock,
    changeLogSize: number,
  ) {
    this.changes = new ChangeLog(`${clock.now().toString(36)}${(opened++).toString(36)}`, changeLogSize);
  }

  static async open(nc: NatsConnection, name: string, options: ReplicaOptions = {}): Promise<TableReplica> {
    const kv = await openTable(nc, name);
    const replica = new TableReplica(name, kv, options.clock ?? systemClock, options.changeLogSize ?? 10_000);
    await replica.#watch(nc);
    return replica;
  }

  /** Start the watch; resolve once the bucket's contents as of now are applied. */
  async #watch(nc: NatsConnection): Promise<void> {
    const iter = await this.kv.watch();
    this.#stop = () => iter.stop();
    const newest = await newestRevision(nc, tableBucket(this.name));
    let live = newest === 0;
    let synced!: (error?: unknown) => void;
    const initial = new Promise<void>((
      resolve,
      reject,
    ) => (synced = (error) => (error === undefined ? resolve() : reject(error))));
    if (live) synced();
    void (async () => {
      try {
        // A request waits for at most about one slice of applying entries, however many arrived.
        for await (const entry of inSlices(iter, this.clock, sliceMs)) {
          const changes = this.#state.apply(entry.key, entry.operation, entry.value, this.clock.now());
          if (live && changes.length > 0) {
            const first = this.changes.append(changes);
            for (const listener of this.#listeners) listener(changes, first);
          }
          if (!live && (entry.delta === 0 || entry.revision >= newest)) {
            live = true;
            synced();
          }
        }
        if (!live) synced(new Error(`the watch of table "${this.name}" ended before it had read the table`));
      } catch (error) {
        // The watch failed (the bucket was deleted, or the connection closed): the replica ends.
        if (!live) synced(error);
      } finally {
        this.#ended = true;
        this.#resolveEnded();
      }
    })();
    await initial;
  }

  /** True once the watch has ended: the replica no longer follows the table. */
  get isEnded(): boolean {
    return this.#ended;
  }

  get meta(): TableMeta | undefined {
    return this.#state.meta;
  }

  get size(): number {
    return this.#state.size;
  }

  /** One row by key (its string form), from memory. */
  get(key: Key): unknown {
    return this.#state.get(String(key));
  }

  /** Every row, in key order. */
  rows(): unknown[] {
    return this.#state.rows();
  }

  range(query: RangeQuery): RangeResult {
    return this.#state.range(query);
  }

  partitionOf(key: Key): number | undefined {
    return this.#state.partitionOf(String(key));
  }

  reflects(): TableReflects {
    return this.#state.reflects();
  }

  reflectsPartition(partition: number): PartitionReflects {
    return this.#state.reflectsPartition(partition);
  }

  /**
   * Be told of row changes as they are applied, with the change log sequence of the first (the
   * others follow it); returns the unsubscribe function.
   */
  subscribe(listener: (changes: readonly RowChange[], firstSeq: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#stop?.();
    this.#listeners.clear();
  }
}

function lowerBound(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The same keys in the same order. */
function sameKeys(a: readonly (readonly [Key, unknown])[], b: readonly (readonly [Key, unknown])[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]![0] !== b[i]![0]) return false;
  return true;
}

/** Equality of two values decoded from JSON (without allocating: it runs for every row of a page). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  let count = 0;
  for (const k in a) {
    if (!Object.hasOwn(b, k) || !sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}
