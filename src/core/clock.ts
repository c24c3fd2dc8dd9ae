/**
 * Time, injected. The core never reads the wall clock or schedules a timer by itself: it asks a
 * Clock. The shape is XState's own `Clock` plus `now()`, so the same object drives the actors'
 * delayed transitions.
 *
 * @example
 * const clock = manualClock(0);
 * clock.setTimeout(() => console.log("fired"), 100);
 * clock.advance(100); // prints "fired"
 * for await (const entry of inSlices(watch, systemClock, 1)) apply(entry); // the event loop turns every ms
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A clock that moves only when told to: for tests. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
}

export function manualClock(start = 0): ManualClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        let due: [number, { at: number; fn: () => void }] | undefined;
        for (const entry of timers) if (entry[1].at <= until && (!due || entry[1].at < due[1].at)) due = entry;
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
  };
}

/**
 * Resolves on the next turn of the event loop, after pending I/O: long work (a checkpoint of a
 * big state) awaits it between slices so that reading and heartbeats are never starved. Not a
 * timer: it waits for no amount of time.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * The items of an async iterable, letting the event loop turn (`nextTurn`) whenever `sliceMs` of
 * the clock's time have passed since it last did. Items an iterator has buffered otherwise arrive
 * in one run of microtasks, however many: nothing else (an HTTP request, a timer) runs meanwhile.
 */
export async function* inSlices<T>(source: AsyncIterable<T>, clock: Clock, sliceMs: number): AsyncGenerator<T> {
  let sliceStart = clock.now();
  for await (const item of source) {
    if (clock.now() - sliceStart >= sliceMs) {
      await nextTurn();
      sliceStart = clock.now();
    }
    yield item;
  }
}
