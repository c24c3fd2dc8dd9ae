/**
 * Table flushes between checkpoints: result-table pages of the chunks that changed are written
 * every `intervalMs` (default 100), not only at checkpoint time, so a dashboard sees an event's
 * effect in about that long instead of the checkpoint interval (Flink's `sink.buffer-flush.interval`
 * beside its checkpoint interval).
 *
 * Exactly-once state is unchanged: a flush writes table pages only, never state chunks or the
 * manifest, so a table may run ahead of the committed checkpoint, as it already may between a
 * checkpoint's page writes and its manifest commit. After a crash, replay from the checkpoint
 * reproduces the same rows (pages are deterministic upserts), and the first checkpoint after
 * recovery rewrites every page.
 *
 * The cost is bounded: one flusher per worker runs every actor's flush in a round (an actor's pages
 * are encoded and published at once; its lifecycle machine holds a flush back while a checkpoint
 * writes pages, so a table never goes back; between actors the event loop turns once `sliceMs` have passed, so reading
 * is not held up for a whole round), and waits at least `round duration / budget` before the next
 * round, so flushing takes at most `budget` (default 25%) of the worker's time, however large the
 * table. Its memory is bounded too: an actor writes no more pages while the publisher holds more
 * than a few MB unacknowledged (actors/operator-actor.ts); the pages left wait for the next round,
 * which starts with the next actor.
 * While the worker catches up with a backlog, rounds are skipped: freshness matters once it has.
 * So the budget only holds while the worker keeps up; at 10% a table of 10,000 busy rows (a round
 * of ~10 ms, more on a busy machine) already stretched the interval past 100 ms.
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
