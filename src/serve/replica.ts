/**
 * An in-memory replica of one result table, kept current by a KV watch on its bucket: a read never
 * waits on NATS. It keeps each partition's pages as bytes (src/state/table-page.ts), indexes the
 * rows of the partition's current layout by key and in key order, and parses a row only when it is
 * read. `ReplicaState` is the pure part (bucket entries in, row changes out, into its ChangeLog);
 * `TableReplica` feeds it from `kv.watch()`, in slices of about a millisecond, and tells subscribers.
 * See docs/ARCHITECTURE.md, "The table replica", for why, key order, and what `reflects` means.
 *
 * @example
 * const replica = await TableReplica.open(nc, "revenue_by_store");
 * replica.get("store-1"); // { key: "store-1", orders: 12, ... } or undefined, from memory
 * replica.range({ from: "store-1", limit: 10 }).rows;
 * const stop = replica.subscribe((first, count) => console.log(replica.changes.change(first)));
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { KV } from "@nats-io/kv";
import { type Key, keyHash, partitionOf } from "../core/partition.ts";
import { newestRevision } from "../state/bucket.ts";
import { type Clock, inSlices, systemClock } from "../core/clock.ts";
import { ChangeLog } from "./change-log.ts";
import { openTable } from "../state/table.ts";
import {
  decodeIndex,
  decodeMeta,
  decodePageFrom,
  type PageLines,
  pageRow,
  pageRowJson,
  parseEntryKey,
  sameRow,
  type TableMeta,
} from "../state/table-page.ts";
import { tableBucket } from "../core/names.ts";

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

/** Where a key's row is: row `row` of `page` (repointed in place when a new version of the page comes). */
interface Held {
  readonly key: Key;
  page: PageLines;
  row: number;
  partition: number;
}

interface PartitionState {
  chunkBits: number | undefined;
  /** Pages of every layout seen, by `<chunkBits>.<chunk>`. */
  readonly pages: Map<string, PageLines>;
  checkpoint: number | null;
  at: number | null;
  lastUpdate: number | null;
}

/** Above this many key additions or removals in one entry, the key order is rebuilt, not spliced. */
const spliceLimit = 64;

/**
 * The replica's pure core: bucket entries in, row changes out, into its change log (`changes`).
 * Rows are kept as where they are written (a row of a page, src/state/table.ts) and parsed when
 * read; a row whose bytes did not change is not a change.
 */
export class ReplicaState {
  meta: TableMeta | undefined;
  lastUpdate: number | null = null;
  readonly #partitions = new Map<number, PartitionState>();
  readonly #rows = new Map<string, Held>();
  /** Keys in order, or undefined when it must be rebuilt before the next ordered read. */
  #sorted: string[] | undefined = [];

  constructor(readonly changes: ChangeLog = new ChangeLog("", 10_000)) {}

  get size(): number {
    return this.#rows.size;
  }

  /**
   * Apply one bucket entry (a PUT with its value, or a DEL/PURGE); returns how many row changes
   * it made, appended to `changes` (the last ones there).
   */
  apply(key: string, operation: "PUT" | "DEL" | "PURGE", value: Uint8Array, now: number): number {
    const entry = parseEntryKey(key);
    if (!entry) return 0;
    this.lastUpdate = now;
    if (entry.kind === "meta") {
      if (operation === "PUT") this.meta = decodeMeta(value);
      return 0;
    }
    const part = this.#partition(entry.partition);
    part.lastUpdate = now;
    if (entry.kind === "index") {
      const bits = operation === "PUT" ? decodeIndex(value).chunkBits : undefined;
      return bits === part.chunkBits ? 0 : this.#relayout(entry.partition, part, bits);
    }
    const pageId = `${entry.chunkBits}.${entry.chunk}`;
    const previous = part.pages.get(pageId);
    const page = operation === "PUT" ? decodePageFrom(value, previous) : undefined;
    if (page) part.pages.set(pageId, page);
    else part.pages.delete(pageId);
    if (entry.chunkBits !== part.chunkBits) return 0; // a page of a layout not (or no longer) current
    if (page) {
      part.checkpoint = page.checkpoint;
      part.at = page.at;
    }
    const meta = page ?? previous;
    return this.#replace(entry.partition, previous ? [previous] : [], page ? [page] : [], meta?.checkpoint ?? 0, meta?.at ?? 0);
  }

  /** A partition's page layout changed: its rows become those of the new layout's pages. */
  #relayout(partition: number, part: PartitionState, bits: number | undefined): number {
    const before = this.#layoutPages(part, part.chunkBits);
    part.chunkBits = bits;
    for (const id of [...part.pages.keys()]) if (Number(id.split(".")[0]) !== bits) part.pages.delete(id);
    let newest: PageLines | undefined;
    for (const page of part.pages.values()) if (!newest || page.checkpoint > newest.checkpoint) newest = page;
    part.checkpoint = newest?.checkpoint ?? null;
    part.at = newest?.at ?? null;
    return this.#replace(partition, before, this.#layoutPages(part, bits), newest?.checkpoint ?? 0, newest?.at ?? 0);
  }

  #layoutPages(part: PartitionState, bits: number | undefined): PageLines[] {
    if (bits === undefined) return [];
    const pages: PageLines[] = [];
    for (const [id, page] of part.pages) if (Number(id.split(".")[0]) === bits) pages.push(page);
    return pages;
  }

  /** Replace the rows of pages `before` by those of pages `after` (of one partition); returns how many changed. */
  #replace(
    partition: number,
    before: readonly PageLines[],
    after: readonly PageLines[],
    checkpoint: number,
    at: number,
  ): number {
    // A page rewritten with the same keys in the same order (a busy table, between layout
    // changes) loses none of them: no need to track which keys it kept.
    const sameKeyset = before.length === 1 && after.length === 1 && sameKeys(before[0]!.keys, after[0]!.keys);
    const kept = sameKeyset ? undefined : new Set<string>();
    let changed = 0;
    const added: string[] = [];
    for (const page of after) {
      for (let r = 0; r < page.keys.length; r++) {
        const key = page.keys[r]!;
        const id = String(key);
        kept?.add(id);
        const held = this.#rows.get(id);
        if (held) {
          const same = sameRow(held.page, held.row, page, r);
          held.page = page;
          held.row = r;
          held.partition = partition;
          if (same) continue;
        } else {
          added.push(id);
          this.#rows.set(id, { key, page, row: r, partition });
        }
        this.changes.append("upsert", key, partition, checkpoint, at, page, r);
        changed++;
      }
    }
    const removed: string[] = [];
    for (const page of kept ? before : []) {
      for (const key of page.keys) {
        const id = String(key);
        if (kept?.has(id) || this.#rows.get(id)?.partition !== partition) continue;
        this.#rows.delete(id);
        removed.push(id);
        this.changes.append("delete", key, partition, checkpoint, at);
        changed++;
      }
    }
    this.#reorder(added, removed);
    return changed;
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
    const held = this.#rows.get(key);
    return held && pageRow(held.page, held.row);
  }

  /** A row as JSON text, as the writer wrote it (what `get` parses), or undefined. */
  getJson(key: string): string | undefined {
    const held = this.#rows.get(key);
    return held && pageRowJson(held.page, held.row);
  }

  /** Every row, in key order. */
  rows(): unknown[] {
    return this.#order().map((id) => this.get(id));
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
      rows.push({ key: held.key, row: pageRow(held.page, held.row) });
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
  readonly #state: ReplicaState;
  readonly #listeners = new Set<(firstSeq: number, count: number) => void>();
  #stop: (() => void) | undefined;
  #ended = false;
  #resolveEnded!: () => void;
  /** Resolves when the watch ends (closed, or the bucket went away). */
  readonly ended = new Promise<void>((resolve) => (this.#resolveEnded = resolve));

  /** The changes applied, numbered (Last-Event-ID resumes); listeners are told of those after opening. */
  readonly changes: ChangeLog;

  private constructor(
    readonly name: string,
    private readonly kv: KV,
    private readonly clock: Clock,
    changeLogSize: number,
  ) {
    this.changes = new ChangeLog(`${clock.now().toString(36)}${(opened++).toString(36)}`, changeLogSize);
    this.#state = new ReplicaState(this.changes);
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
    const newest = await newestRevision(nc, tableBucket(this.name)).catch((error) => {
      iter.stop();
      throw error;
    });
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
          const count = this.#state.apply(entry.key, entry.operation, entry.value, this.clock.now());
          if (live && count > 0) {
            const first = this.changes.last - count + 1;
            for (const listener of this.#listeners) listener(first, count);
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

  /** One row by key as JSON text, as written (`get` parses it), or undefined. */
  getJson(key: Key): string | undefined {
    return this.#state.getJson(String(key));
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
   * Be told of row changes as they are applied: `count` changes from change log sequence
   * `firstSeq` on (read them with `changes.keyOf` and `changes.change`); returns the unsubscribe
   * function.
   */
  subscribe(listener: (firstSeq: number, count: number) => void): () => void {
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
function sameKeys(a: readonly Key[], b: readonly Key[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
