/**
 * Table flushes between checkpoints: one flusher per worker writes the result-table pages of the
 * chunks that changed every `intervalMs` (default 100), so a dashboard sees an event's effect in
 * about that long instead of the checkpoint interval. Table pages only: state and positions stay
 * the checkpoint's. Flushing takes at most `budget` (default 25%) of the worker's time, and rounds
 * are skipped while the worker catches up with a backlog.
 * See docs/ARCHITECTURE.md, "Table flushes", for why this keeps exactly once, and the cost bounds.
 *
 * @example
 * const flusher = new TableFlusher(systemClock, { intervalMs: 100 });
 * flusher.add({ flush: () => actor.send({ type: "flush" }) }); // each round, an operator actor's flush
 * flusher.stop();
 */
import { type Clock, nextTurn } from "../src/core/clock.ts";

export interface TableFlushOptions {
  /** Flush changed table pages this often, in ms; 0: only at checkpoints. Default 100. */
  readonly intervalMs?: number;
  /** The largest share of time flushing may take (default 0.25). */
  readonly budget?: number;
  /** The event loop turns between actors' flushes once this many ms of a round ran (default 2). */
  readonly sliceMs?: number;
  /**
   * True while the worker is catching up (its readers hand over full batches): a round is then
   * skipped, as the next one would write the same pages again, and checkpoints write them anyway.
   */
  readonly catchingUp?: () => boolean;
}

export class TableFlusher {
  readonly intervalMs: number;
  readonly budget: number;
  readonly sliceMs: number;
  readonly #targets = new Set<{ flush(): void }>();
  #timer: unknown;
  #stopped = false;
  #rounds = 0;
  readonly #catchingUp: () => boolean;

  constructor(private readonly clock: Clock, options: TableFlushOptions = {}) {
    this.intervalMs = options.intervalMs ?? 100;
    this.budget = options.budget ?? 0.25;
    this.sliceMs = options.sliceMs ?? 2;
    this.#catchingUp = options.catchingUp ?? (() => false);
  }

  add(target: { flush(): void }): void {
    this.#targets.add(target);
    if (this.#timer === undefined) this.#schedule(this.intervalMs);
  }

  remove(target: { flush(): void }): void {
    this.#targets.delete(target);
  }

  #schedule(ms: number): void {
    if (this.#stopped || this.intervalMs <= 0) return;
    this.#timer = this.clock.setTimeout(() => void this.#round(), ms);
  }

  async #round(): Promise<void> {
    if (this.#catchingUp()) return this.#schedule(this.intervalMs);
    let took = 0;
    let sliceStart = this.clock.now();
    // A round may stop early when too many bytes are unacknowledged: start with a different
    // actor each round, so that none waits behind the others for ever.
    const targets = [...this.#targets];
    const first = this.#rounds++ % Math.max(1, targets.length);
    for (let i = 0; i < targets.length; i++) {
      if (this.clock.now() - sliceStart >= this.sliceMs) {
        took += this.clock.now() - sliceStart;
        await nextTurn();
        if (this.#stopped) return;
        sliceStart = this.clock.now();
      }
      targets[(first + i) % targets.length]!.flush();
    }
    took += this.clock.now() - sliceStart;
    this.#schedule(Math.max(this.intervalMs, took / this.budget - took));
  }

  stop(): void {
    this.#stopped = true;
    this.clock.clearTimeout(this.#timer);
  }
}
