/**
 * The event-time watermark of an operator actor, from those of its sources: the lowest over the
 * sources, leaving out idle ones (all idle: the highest), and never going back, also when an idle
 * source wakes up behind it. Each source's watermark is checkpointed with the actor's state (as
 * of its position), so a replay decides lateness and fires timers as the first run did.
 *
 * @example
 * const wm = new InputWatermarks(["orders", "menu-changes"]);
 * wm.advance("orders", 1_000); // false: menu-changes still holds it at -Infinity
 * wm.setIdle("menu-changes", true); // true: the watermark moved to 1000
 * wm.value; // 1000
 */
export class InputWatermarks {
  /** Per source, its watermark as of the actor's position. */
  bySource: Record<string, number> = {};
  readonly #idle = new Set<string>();
  /** The highest watermark so far: the actor's never goes back. */
  #floor = Number.NEGATIVE_INFINITY;

  constructor(readonly sources: readonly string[]) {}

  /** The actor's watermark now. */
  get value(): number {
    let low = Number.POSITIVE_INFINITY;
    let high = Number.NEGATIVE_INFINITY;
    for (const source of this.sources) {
      const w = this.bySource[source] ?? Number.NEGATIVE_INFINITY;
      if (!this.#idle.has(source)) low = Math.min(low, w);
      high = Math.max(high, w);
    }
    const wm = low === Number.POSITIVE_INFINITY ? high : low;
    if (wm > this.#floor) this.#floor = wm;
    return this.#floor;
  }

  /** The actor's watermark as last computed (by `value`, `advance` or `setIdle`). */
  get last(): number {
    return this.#floor;
  }

  /** Move a source's watermark forward; true if the actor's watermark moved with it (to `last`). */
  advance(source: string, watermark: number): boolean {
    const before = this.bySource[source] ?? Number.NEGATIVE_INFINITY;
    if (watermark <= before) return false;
    this.bySource[source] = watermark;
    // The floor is the watermark as last computed: at worst behind, and then one look too many.
    const low = this.#floor;
    return this.value > low;
  }

  /** A source went idle (it stops holding the watermark back) or woke up; true if the watermark moved. */
  setIdle(source: string, idle: boolean): boolean {
    if (this.#idle.has(source) === idle) return false;
    const low = this.value;
    if (idle) this.#idle.add(source);
    else this.#idle.delete(source);
    return this.value > low;
  }

  /**
   * An edge's writing partitions' watermarks as of the position (the edge's own is the lowest of
   * them), kept under `<source>@<partition>` beside the sources' and checkpointed with them, so
   * that a reader starting again knows each writer's and not only the lowest.
   */
  setWriters(source: string, writers: readonly number[]): void {
    writers.forEach((w, p) => {
      const key = `${source}@${p}`;
      if (w > (this.bySource[key] ?? Number.NEGATIVE_INFINITY)) this.bySource[key] = w;
    });
  }

  /** Writing partition `p`'s watermark of edge `source` as of the position (a checkpoint without it: the edge's). */
  writer(source: string, p: number): number {
    return this.bySource[`${source}@${p}`] ?? this.bySource[source] ?? Number.NEGATIVE_INFINITY;
  }

  /**
   * Start again from checkpointed watermarks (after a recovery): no source is idle, and the
   * actor's watermark is at once the one they give, the one the checkpoint's records left it at.
   * (Left at -Infinity until a source's watermark rose past its checkpointed one, every record
   * until then met no watermark at all: late events were taken as on time.)
   */
  reset(bySource: Readonly<Record<string, number>>): void {
    this.bySource = { ...bySource };
    this.#idle.clear();
    this.#floor = Number.NEGATIVE_INFINITY;
    this.#floor = this.value;
  }

  /** The watermarks to checkpoint: -Infinity (no event time yet) does not survive JSON, so such sources are left out. */
  finite(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.bySource).filter(([, w]) => Number.isFinite(w)));
  }
}
