/**
 * The recent row changes of a table replica, numbered, so that a Server-Sent Events client that
 * reconnects with `Last-Event-ID` gets exactly what it missed: a ring of the last `capacity`
 * changes, event ids `<epoch>.<seq>`, rows kept as where they are written, parsed when sent.
 * See docs/ARCHITECTURE.md, "The change log", for epochs and why rows stay unparsed.
 *
 * @example
 * const log = new ChangeLog("lq3k9x", 10_000);
 * log.append("upsert", "store-1", 0, page.checkpoint, page.at, page, 0); // returns its sequence
 * log.keyOf(42); // "store-1": filter without parsing
 * log.change(42); // { op: "upsert", key: "store-1", row: {...}, partition: 0, checkpoint, at }
 * const resumed = log.resume("lq3k9x.41"); // the changes after 41, or undefined: send a snapshot
 * log.eventId(42); // "lq3k9x.42"
 */
import type { Key } from "../core/partition.ts";
import { type PageLines, pageRow } from "../state/table-page.ts";
import type { RowChange } from "./replica.ts";

export interface LoggedChange {
  readonly seq: number;
  readonly change: RowChange;
}

export class ChangeLog {
  readonly #keys: Key[];
  /** The page holding the new row of an upsert; undefined for a delete. */
  readonly #pages: (PageLines | undefined)[];
  readonly #rows: Int32Array;
  readonly #partitions: Int32Array;
  readonly #checkpoints: Float64Array;
  readonly #ats: Float64Array;
  /** Sequence of the last change appended (0: none yet). */
  #last = 0;

  constructor(
    readonly epoch: string,
    readonly capacity: number,
  ) {
    const size = Math.max(1, capacity);
    this.#keys = new Array<Key>(size).fill("");
    this.#pages = new Array<PageLines | undefined>(size).fill(undefined);
    this.#rows = new Int32Array(size);
    this.#partitions = new Int32Array(size);
    this.#checkpoints = new Float64Array(size);
    this.#ats = new Float64Array(size);
  }

  /** The sequence of the last change (0 before any). */
  get last(): number {
    return this.#last;
  }

  /** The lowest sequence still held. */
  get oldest(): number {
    return Math.max(1, this.#last - this.#keys.length + 1);
  }

  /**
   * Number a change and keep it: an upsert of `key` to row `row` of `page`, or a delete of `key`.
   * Returns its sequence.
   */
  append(
    op: RowChange["op"],
    key: Key,
    partition: number,
    checkpoint: number,
    at: number,
    page?: PageLines,
    row = -1,
  ): number {
    const slot = ++this.#last % this.#keys.length;
    this.#keys[slot] = key;
    this.#pages[slot] = op === "upsert" ? page : undefined;
    this.#rows[slot] = op === "upsert" ? row : -1;
    this.#partitions[slot] = partition;
    this.#checkpoints[slot] = checkpoint;
    this.#ats[slot] = at;
    return this.#last;
  }

  /** Whether `seq` is still held. */
  holds(seq: number): boolean {
    return seq >= this.oldest && seq <= this.#last;
  }

  /** The key a held change is about. */
  keyOf(seq: number): Key {
    return this.#keys[seq % this.#keys.length]!;
  }

  /** A held change, its row parsed. */
  change(seq: number): RowChange {
    const slot = seq % this.#keys.length;
    const key = this.#keys[slot]!;
    const page = this.#pages[slot];
    const row = this.#rows[slot]!;
    const partition = this.#partitions[slot]!;
    const checkpoint = this.#checkpoints[slot]!;
    const at = this.#ats[slot]!;
    return row < 0
      ? { op: "delete", key, partition, checkpoint, at }
      : { op: "upsert", key, row: pageRow(page!, row), partition, checkpoint, at };
  }

  /** The event id of a sequence. */
  eventId(seq: number): string {
    return `${this.epoch}.${seq}`;
  }

  /**
   * The changes after the position a Last-Event-ID names, or undefined when it cannot be resumed
   * from: another epoch, malformed, ahead of the log, or older than what the ring holds.
   */
  resume(lastEventId: string): LoggedChange[] | undefined {
    const dot = lastEventId.lastIndexOf(".");
    if (dot < 0 || lastEventId.slice(0, dot) !== this.epoch) return undefined;
    const text = lastEventId.slice(dot + 1);
    if (!/^\d+$/.test(text)) return undefined;
    const after = Number(text);
    if (after > this.#last || after + 1 < this.oldest) return undefined;
    const out: LoggedChange[] = [];
    for (let seq = after + 1; seq <= this.#last; seq++) out.push({ seq, change: this.change(seq) });
    return out;
  }
}
