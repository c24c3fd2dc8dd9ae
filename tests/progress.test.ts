/**
 * Progress of long work: a bar redrawn in place on a terminal, plain periodic lines otherwise,
 * both with the rate and the time left.
 */
import { describe, expect, it } from "vitest";
import { duration, progress, render } from "../src/cli/progress.ts";
import { manualClock } from "../src/core/clock.ts";

describe("progress", () => {
  it("renders a bar with percentage, counts, rate and ETA", () => {
    const line = render({ label: "publishing", done: 25_000, total: 100_000, unit: "orders", rate: 12_500, elapsedMs: 2000 }, {
      width: 20,
    });
    expect(line).toBe("publishing  [#####...............]   25%  25,000/100,000 orders  12,500/s  ETA 6 s");
    expect(render({ label: "reading", done: 42, rate: 0, elapsedMs: 1 }, undefined)).toBe("reading  42  0/s");
  });

  it("formats durations for people", () => {
    expect(duration(4_400)).toBe("4 s");
    expect(duration(125_000)).toBe("2 min 5 s");
    expect(duration(3_780_000)).toBe("1 h 3 min");
  });

  it("prints plain lines every few seconds when not on a terminal", () => {
    const clock = manualClock(0);
    const out: string[] = [];
    const bar = progress({
      label: "gen",
      total: 10_000,
      unit: "orders",
      terminal: false,
      write: (t) => out.push(t),
      clock,
      everyMs: 5000,
    });
    for (let s = 1; s <= 10; s++) {
      clock.advance(1000);
      bar.update(s * 1000);
    }
    bar.done("acknowledged");
    expect(out).toEqual([
      "gen   50%  5,000/10,000 orders  1,000/s  ETA 5 s\n",
      "gen  100%  10,000/10,000 orders  1,000/s\n",
      "gen  100%  10,000/10,000 orders  1,000/s  in 10 s  acknowledged\n",
    ]);
  });

  it("redraws one line in place on a terminal, at most every 100 ms, and ends it", () => {
    const clock = manualClock(0);
    const out: string[] = [];
    const bar = progress({ label: "replaying", total: 1000, terminal: true, write: (t) => out.push(t), clock, width: 10 });
    clock.advance(50);
    bar.update(100); // too soon after the start: not drawn
    clock.advance(150);
    bar.update(400);
    expect(out).toEqual(["\rreplaying  [####......]   40%  400/1,000  2,000/s  ETA 0 s\x1b[K"]);
    bar.done();
    expect(out.at(-1)).toMatch(/^\rreplaying  \[####\.\.\.\.\.\.\]   40%  400\/1,000  2,000\/s  ETA 0 s  in 0 s\x1b\[K\n$/);
  });

  it("rates the last few seconds, not the whole run", () => {
    const clock = manualClock(0);
    const out: string[] = [];
    const bar = progress({ label: "x", terminal: false, write: (t) => out.push(t), clock, everyMs: 1000 });
    for (let s = 1; s <= 20; s++) {
      clock.advance(1000);
      bar.update(s <= 10 ? s * 100 : 1000 + (s - 10) * 1000); // 100/s, then 1,000/s
    }
    expect(out.at(-1)).toBe("x  11,000  1,000/s\n");
  });
});
