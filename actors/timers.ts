/**
 * Event-time timers of an operator: which keys to look at when the watermark reaches a time.
 * Kept in memory beside the keyed state and derived from it after a recovery (an operator's
 * `restore`), so they need no checkpoint of their own.
 *
 * @example
 * const timers = new EventTimers();
 * timers.add(60_000, "store-1");
 * timers.takeDue(60_000); // ["store-1"]
 */
import type { Key } from "../src/core/partition.ts";

const none: readonly Key[] = Object.freeze([]);

export class EventTimers {
  readonly #due = new Map<number, Set<Key>>();
  /** The times in `#due`, as a binary min-heap: finding what is due never scans every timer. */
  readonly #times: number[] = [];

  add(at: number, key: Key): void {
    let keys = this.#due.get(at);
    if (!keys) {
      this.#due.set(at, keys = new Set());
      this.#push(at);
    }
    keys.add(key);
  }

  /**
   * The keys of every timer at or before `watermark`, earliest first; those timers are removed.
   * Asked at nearly every event (the watermark moves with event time), and nothing is due at most
   * of them: then no array is made.
   */
  takeDue(watermark: number): readonly Key[] {
    if (!(this.#times[0]! <= watermark)) return none;
    const keys: Key[] = [];
    while (this.#times.length > 0 && this.#times[0]! <= watermark) {
      const at = this.#pop();
      keys.push(...this.#due.get(at)!);
      this.#due.delete(at);
    }
    return keys;
  }

  clear(): void {
    this.#due.clear();
    this.#times.length = 0;
  }

  #push(at: number): void {
    const heap = this.#times;
    let i = heap.push(at) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = at;
  }

  #pop(): number {
    const heap = this.#times;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const child = left + 1 < heap.length && heap[left + 1]! < heap[left]! ? left + 1 : left;
      if (heap[child]! >= last) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
