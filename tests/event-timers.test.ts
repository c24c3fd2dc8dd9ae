/**
 * Event-time timers (actors/timers.ts): whatever the order timers are added in, `fireDue` fires
 * exactly the timers at or before the watermark, earliest first, once each, as a
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
            const fired: { at: number; key: string | number }[] = [];
            timers.fireDue(op.take, (at, key) => fired.push({ at, key }));
            // Earliest first; keys of the same time in the order they were added.
            expect(fired).toEqual([...due].sort((x, y) => x.at - y.at));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("fires a timer set while firing, when it is due by then", () => {
    const timers = new EventTimers();
    timers.add(10, "a");
    const fired: string[] = [];
    timers.fireDue(20, (at, key) => {
      fired.push(`${key}@${at}`);
      if (at === 10) {
        timers.add(15, "b"); // due: fires in this call
        timers.add(25, "c"); // not yet
      }
    });
    expect(fired).toEqual(["a@10", "b@15"]);
    timers.fireDue(30, (at, key) => fired.push(`${key}@${at}`));
    expect(fired).toEqual(["a@10", "b@15", "c@25"]);
  });
});
