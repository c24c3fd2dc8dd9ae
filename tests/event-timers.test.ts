/**
 * Event-time timers (actors/timers.ts): whatever the order timers are added in, `takeDue` returns
 * the keys of exactly the timers at or before the watermark, earliest first, once each, as a
 * plain list sorted by time would.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EventTimers } from "../actors/timers.ts";

describe("event-time timers", () => {
  it("take what is due, earliest first, once", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ add: fc.integer({ min: 0, max: 50 }), key: fc.constantFrom("a", "b", "c", 1, 2) }),
            fc.record({ take: fc.integer({ min: -1, max: 60 }) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const timers = new EventTimers();
          let model: { at: number; key: string | number }[] = [];
          for (const op of ops) {
            if ("add" in op) {
              timers.add(op.add, op.key);
              if (!model.some((t) => t.at === op.add && t.key === op.key)) model.push({ at: op.add, key: op.key });
              continue;
            }
            const due = model.filter((t) => t.at <= op.take);
            model = model.filter((t) => t.at > op.take);
            const taken = timers.takeDue(op.take);
            // Earliest first; keys of the same time in the order they were added.
            expect(taken).toEqual([...due].sort((x, y) => x.at - y.at).map((t) => t.key));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
