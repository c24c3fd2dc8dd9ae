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
import type { Key } from "../src/pipeline/partition.ts";

export class EventTimers {
  readonly #due = new Map<number, Set<Key>>();

  add(at: number, key: Key): void {
    let keys = this.#due.get(at);
    if (!keys) this.#due.set(at, keys = new Set());
    keys.add(key);
  }

  /** The keys of every timer at or before `watermark`, earliest first; those timers are removed. */
  takeDue(watermark: number): Key[] {
    const times = [...this.#due.keys()].filter((at) => at <= watermark).sort((a, b) => a - b);
    const keys: Key[] = [];
    for (const at of times) {
      keys.push(...this.#due.get(at)!);
      this.#due.delete(at);
    }
    return keys;
  }

  clear(): void {
    this.#due.clear();
  }
}
