/**
 * The timers of an operator actor: which keys to look at when the watermark (or the clock)
 * reaches a time. Kept in memory beside the keyed state and derived from it after a recovery (an
 * operator's `rearm`), so they need no checkpoint of their own.
 *
 * @example
 * const timers = new EventTimers();
 * timers.add(60_000, "store-1");
 * timers.fireDue(60_000, (at, key) => console.log(at, key)); // 60000 store-1
 */
import type { Key } from "../src/core/partition.ts";

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
   * Fire every timer at or before `upTo`, earliest first (keys of one time in the order they were
   * set), each once, and remove it; a timer set meanwhile at or before `upTo` fires in this call
   * too. Asked at nearly every event (the watermark moves with event time), and nothing is due at
   * most of them: then it costs one comparison.
   */
  fireDue(upTo: number, fire: (at: number, key: Key) => void): void {
    while (this.#times[0]! <= upTo) {
      const at = this.#pop();
      const keys = this.#due.get(at)!;
      this.#due.delete(at);
      for (const key of keys) fire(at, key);
    }
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
