/**
 * The most recent input records of an operator actor, for inspection (the dashboard's actor
 * view): a fixed-size ring of references to records the actor applied. It holds references only
 * (no copies, no encoding) and is fed once per batch with at most `capacity` records from the
 * batch's end, so its cost does not grow with the batch: a few array stores per batch. Capacity
 * 0 turns it off.
 *
 * @example
 * const recent = new RecentInputs(20);
 * recent.record(batch.records, applied); // after folding the batch
 * recent.list(); // the last 20 applied records, oldest first
 */
import type { Rec } from "./operator.ts";

export class RecentInputs {
  readonly #ring: (Rec | undefined)[];
  /** Where the next record goes. */
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#ring = new Array<Rec | undefined>(Math.max(0, capacity));
  }

  /** Remember the last records of a batch whose sequence is above `applied` (those it applied). */
  record(records: readonly Rec[], applied: number): void {
    const capacity = this.capacity;
    if (capacity <= 0 || records.length === 0) return;
    // Records are in sequence order, so the applied ones are a suffix: take up to `capacity` of it.
    let from = Math.max(0, records.length - capacity);
    while (from < records.length && records[from]!.seq <= applied) from++;
    for (let i = from; i < records.length; i++) {
      this.#ring[this.#next] = records[i];
      this.#next = (this.#next + 1) % capacity;
    }
    this.#size = Math.min(capacity, this.#size + records.length - from);
  }

  /** The remembered records, oldest first. */
  list(): Rec[] {
    const out: Rec[] = [];
    const capacity = this.capacity;
    for (let i = 0; i < this.#size; i++) out.push(this.#ring[(this.#next - this.#size + i + capacity) % capacity]!);
    return out;
  }
}
