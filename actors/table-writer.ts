/**
 * The result tables of one operator actor: which rows it writes, and when. A step's rows come
 * either from its state (an aggregate's row of each key, a process step's machine) or from its
 * outputs (a window's row per window, which the writer keeps itself, in chunks of their own). Rows
 * are written a page per chunk (the format: src/state/table-page.ts): with each checkpoint, as the
 * companions of its chunks (src/state/checkpoint-write.ts), and between checkpoints by `flush`
 * (actors/table-flush.ts), so a table runs ahead of the committed checkpoint.
 * See docs/ARCHITECTURE.md, "Writing pages".
 *
 * @example
 * const tables = new TableWriter(publisher, { partition: 0, tables: ["revenue_by_store"], rows: { of: "state", row: aggregate.row } });
 * tables.flush(state, manifest, clock.now()); // pages of the chunks changed since the last write
 */
import type { Key } from "../src/core/partition.ts";
import { kvSubject, tableBucket } from "../src/core/names.ts";
import type { Publisher } from "../src/log/publisher.ts";
import { type Manifest, maxChunkBytes } from "../src/state/checkpoint.ts";
import { type Companion, type Companions, noCompanions } from "../src/state/checkpoint-write.ts";
import { type ChunkSnapshot, KeyedState } from "../src/state/keyed-state.ts";
import { FencedPages } from "../src/state/fenced-pages.ts";
import { encodeIndex, encodePage, indexKey, layoutPages, pageKey } from "../src/state/table-page.ts";
import { purgePages, readPartitionPages } from "../src/state/table.ts";
import type { NatsConnection } from "@nats-io/nats-core";

/** Where a step's table rows come from. */
export type TableRows<S, Out> =
  /** Each key's row, from its state; a key whose state is gone leaves the table. */
  | { readonly of: "state"; row(key: Key, state: S): unknown }
  /** Each output is a row under its row key, placed by the key that emitted it; rows stay. */
  | { readonly of: "outputs"; rowKey(key: Key, output: Out): string };

export interface TableWriterOptions<S, Out> {
  readonly partition: number;
  /** Result tables fed by this step (none: the writer writes nothing). */
  readonly tables: readonly string[];
  readonly rows: TableRows<S, Out>;
  /** Where pages are read back (rows kept from outputs, at recovery) and purged (a replaced layout). */
  readonly nc?: NatsConnection | undefined;
}

/** What a page says of itself: when its checkpoint began, and which it is. */
interface PageHeader {
  readonly at: number;
  readonly checkpoint: number;
}

/**
 * A table flush writes no more pages while the publisher holds more than this many unacknowledged
 * bytes (a checkpoint's writes, or the round's own pages); the rest wait for the next round. With
 * many busy keys a round would otherwise encode and send the whole table at once.
 */
const maxFlushBytes = 4 * 1024 * 1024;

export class TableWriter<S, Out> {
  readonly #buckets: readonly string[];
  /** Rows kept from outputs (key to row key to row), in chunks of their own; and the layout whose index readers know. */
  #owned: KeyedState<Record<string, unknown>> | undefined;
  #ownedBits: number | undefined;
  /** Whether the index of the state's page layout is written (a new partition: not until its first pages). */
  #indexed = false;

  /** Page puts, each naming the stored sequence it replaces (a paused previous owner's are refused). */
  #pages: FencedPages;

  constructor(readonly publisher: Publisher, readonly options: TableWriterOptions<S, Out>) {
    this.#buckets = options.tables.map(tableBucket);
    this.#pages = new FencedPages(publisher, options.nc);
  }

  get active(): boolean {
    return this.#buckets.length > 0;
  }

  /** An output of `key` (rows from outputs): its row, under its row key. */
  put(key: Key, hash: number, output: Out): void {
    const { rows } = this.options;
    const owned = this.#owned;
    if (rows.of !== "outputs" || !owned) return;
    owned.set(key, hash, { ...owned.get(key, hash), [rows.rowKey(key, output)]: output });
  }

  /** After a recovery: the rows kept from outputs, as the table holds them; `manifest` is the recovered one. */
  async recover(manifest: Manifest): Promise<void> {
    const { rows, nc, partition } = this.options;
    // The first checkpoint after a recovery writes the state layout's index.
    this.#indexed = manifest.checkpoint > 0;
    if (!this.active) return;
    // Ownership is taken (the manifest's generation bumped): what the pages hold now, and any put
    // of a previous owner stored after this, is what this owner's next put of each page replaces.
    this.#pages = new FencedPages(this.publisher, nc);
    for (const bucket of this.#buckets) await this.#pages.learn(bucket, [`p.${partition}.>`, indexKey(partition)]);
    if (rows.of !== "outputs") return;
    if (!nc) throw new Error("a table of rows kept from outputs needs a connection to read them back");
    const written = await readPartitionPages(nc, this.#buckets[0]!, partition);
    this.#indexed = written !== undefined;
    const owned = new KeyedState<Record<string, unknown>>(written?.chunkBits ?? 0);
    for (const [index, page] of written?.pages ?? []) {
      const chunk = new Map<Key, Record<string, unknown>>();
      for (const [rowKey, row] of page.rows) {
        const key = (row as { key: Key }).key;
        chunk.set(key, { ...chunk.get(key), [rowKey]: row });
      }
      owned.loadEntries(index, chunk);
    }
    this.#owned = owned;
    this.#ownedBits = written?.chunkBits;
  }

  /**
   * Between checkpoints: write the pages of the chunks changed since their last write, in the
   * layout readers know (a chunk that outgrew one message waits for the checkpoint, which splits
   * it), synchronously. Table pages only: state and positions stay the checkpoint's.
   */
  flush(state: KeyedState<S>, committed: Manifest, now: number): void {
    if (!this.active) return;
    const header = { at: now, checkpoint: committed.checkpoint + 1 };
    if (this.options.rows.of === "state") {
      if (state.chunkBits !== committed.chunkBits) return;
      this.#flushChanged(state, header, (entries) => this.#stateRows(entries));
      if (!this.#indexed) this.#publishIndex(state.chunkBits);
      this.#indexed = true;
      return;
    }
    const owned = this.#owned;
    if (!owned) return;
    if (this.#ownedBits === undefined) this.#ownedBits = owned.chunkBits; // nothing written yet: this layout
    if (owned.chunkBits !== this.#ownedBits) return;
    const first = !this.#indexed;
    this.#flushChanged(owned, header, ownedRows);
    if (first) this.#publishIndex(owned.chunkBits);
    this.#indexed = true;
  }

  #flushChanged<T>(
    state: KeyedState<T>,
    header: PageHeader,
    rowsOf: (entries: ReadonlyMap<Key, T>) => [Key, unknown][],
  ): void {
    // The pages left over wait for the next round (they stay marked changed).
    for (const index of state.tableChanged) {
      if (this.publisher.pendingBytes > maxFlushBytes) return;
      const entries = state.chunkEntries(index);
      if (entries.size > state.maxChunkKeys) continue;
      const page = encodePage({ ...header, rows: rowsOf(entries) });
      if (page.length > maxChunkBytes) continue;
      for (const m of this.#pagesOf(state.chunkBits, index, page)) this.#pages.put(m.subject, m.data);
      state.tableChanged.delete(index);
    }
  }

  /**
   * The checkpoint's part, at its cut (synchronously): the pages of every chunk it writes, the
   * pages of changed rows kept from outputs, and the index of a layout that changed; afterwards,
   * the purge of pages of a replaced layout. `previousBits`: the committed state layout.
   */
  cut(state: KeyedState<S>, header: PageHeader, previousBits: number, rewriteAll: boolean): Companions {
    state.tableChanged.clear(); // this checkpoint writes the pages of every changed chunk
    const owned = this.#owned;
    const ownedChunks = owned?.snapshotDirty() ?? [];
    owned?.tableChanged.clear();
    if (!this.active) return noCompanions;
    const pages = this.#pages;
    const put = (m: Companion) => pages.put(m.subject, m.data);
    const settled = () => pages.settled();
    const { partition, rows, nc } = this.options;
    const purge = async (bits: number) => {
      for (const bucket of this.#buckets) {
        await purgePages(nc!, bucket, partition, bits);
        pages.forget(`$KV.${bucket}.${layoutPages(partition, bits).slice(0, -1)}`); // the layout's subjects (a prefix, not a key)
      }
    };
    if (rows.of === "state") {
      const bits = state.chunkBits;
      const relayout = rewriteAll || bits !== previousBits;
      return {
        with: (chunk) =>
          this.#pagesOf(
            bits,
            chunk.index,
            encodePage({ ...header, rows: this.#stateRows(chunk.entries as ReadonlyMap<Key, S>) }),
          ),
        after: () => [],
        last: () => (relayout ? this.#index(bits) : []),
        put,
        settled,
        committed: async () => {
          this.#indexed = true;
          if (bits === previousBits || !nc) return;
          await purge(previousBits); // pages of the previous layout (readers skip them once the new index is written)
        },
      };
    }
    const bits = owned?.chunkBits;
    const before = this.#ownedBits;
    const relayout = bits !== undefined && bits !== before && ownedChunks.length > 0;
    const pageOf = (chunk: ChunkSnapshot<Record<string, unknown>>) =>
      this.#pagesOf(bits!, chunk.index, encodePage({ ...header, rows: ownedRows(chunk.entries) }));
    return {
      with: () => [],
      *after() {
        for (const chunk of ownedChunks) {
          yield pageOf(chunk);
          owned!.release(chunk);
        }
      },
      last: () => (relayout ? this.#index(bits!) : []),
      put,
      settled,
      committed: async () => {
        if (!relayout) return;
        if (before !== undefined && nc) await purge(before);
        this.#ownedBits = bits;
        this.#indexed = true;
      },
    };
  }

  /** The table rows of a chunk of state: each key's row. */
  #stateRows(entries: ReadonlyMap<Key, S>): [Key, unknown][] {
    const rows = this.options.rows as Extract<TableRows<S, Out>, { of: "state" }>;
    const out: [Key, unknown][] = [];
    for (const [k, s] of entries) out.push([k, rows.row(k, s)]);
    return out;
  }

  /** A page, to each of the step's table buckets. */
  #pagesOf(bits: number, index: number, page: Uint8Array): Companion[] {
    const key = pageKey(this.options.partition, bits, index);
    return this.#buckets.map((bucket) => ({ subject: kvSubject(bucket, key), data: page }));
  }

  #index(bits: number): Companion[] {
    const data = encodeIndex(bits);
    const key = indexKey(this.options.partition);
    return this.#buckets.map((bucket) => ({ subject: kvSubject(bucket, key), data }));
  }

  #publishIndex(bits: number): void {
    for (const m of this.#index(bits)) this.#pages.put(m.subject, m.data);
  }
}

/** The table rows of a chunk of rows kept from outputs (key to row key to row): each row under its row key. */
function ownedRows(entries: ReadonlyMap<Key, Record<string, unknown>>): [Key, unknown][] {
  const rows: [Key, unknown][] = [];
  for (const byRowKey of entries.values()) rows.push(...Object.entries(byRowKey));
  return rows;
}
