/**
 * The recent row changes of a table replica, numbered, so that a Server-Sent Events client that
 * reconnects with `Last-Event-ID` gets exactly what it missed. Each change gets the next
 * sequence number; the log keeps the last `capacity` of them in a ring. An event id is
 * `<epoch>.<seq>`: the epoch names this replica (it changes when the service restarts and the
 * numbering starts again), so an id from another epoch, or one older than the ring, cannot be
 * resumed from and the client is sent a full snapshot instead.
 *
 * @example
 * const log = new ChangeLog("lq3k9x", 10_000);
 * log.append(changes); // returns the sequence of the first
 * const resumed = log.resume("lq3k9x.41"); // the changes after 41, or undefined: send a snapshot
 * log.eventId(42); // "lq3k9x.42"
 */
import type { RowChange } from "./replica.ts";

export interface LoggedChange {
  readonly seq: number;
  readonly change: RowChange;
}

export class ChangeLog {
  readonly #ring: (RowChange | undefined)[];
  /** Sequence of the last change appended (0: none yet). */
  #last = 0;

  constructor(
    readonly epoch: string,
    readonly capacity: number,
  ) {
    this.#ring = new Array<RowChange | undefined>(Math.max(1, capacity));
  }

  /** The sequence of the last change (0 before any). */
  get last(): number {
    return this.#last;
  }

  /** The lowest sequence still held. */
  get oldest(): number {
    return Math.max(1, this.#last - this.#ring.length + 1);
  }

  /** Number the changes and keep them; returns the sequence of the first. */
  append(changes: readonly RowChange[]): number {
    const first = this.#last + 1;
    for (const change of changes) this.#ring[++this.#last % this.#ring.length] = change;
    return first;
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
    for (let seq = after + 1; seq <= this.#last; seq++) out.push({ seq, change: this.#ring[seq % this.#ring.length]! });
    return out;
  }
}
