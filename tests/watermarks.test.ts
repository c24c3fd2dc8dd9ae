/**
 * An actor's watermark from its sources' (actors/watermarks.ts): the lowest over them, idle ones
 * aside, never going back, and after a recovery at once the one its checkpointed sources give.
 */
import { describe, expect, it } from "vitest";
import { InputWatermarks } from "../actors/watermarks.ts";

describe("input watermarks", () => {
  it("is the lowest over the sources, idle ones aside, and never goes back", () => {
    const wm = new InputWatermarks(["a", "b"]);
    expect(wm.advance("a", 1_000)).toBe(false);
    expect(wm.value).toBe(Number.NEGATIVE_INFINITY);
    expect(wm.setIdle("b", true)).toBe(true);
    expect(wm.last).toBe(1_000);
    expect(wm.setIdle("b", false)).toBe(false);
    expect(wm.value).toBe(1_000);
    expect(wm.advance("b", 2_000)).toBe(false);
    expect(wm.advance("a", 3_000)).toBe(true);
    expect(wm.last).toBe(2_000);
  });

  it("after a recovery is the checkpointed watermark at once, before any source moves past its own", () => {
    const wm = new InputWatermarks(["orders"]);
    wm.advance("orders", 5_000);
    wm.reset({ orders: 4_000 });
    // The watermark a record meets (an operator reads `last`): not -Infinity, which takes every late event as on time.
    expect(wm.last).toBe(4_000);
    // The next record's watermark, from the reader restarted at the checkpoint: still the same.
    expect(wm.advance("orders", 4_000)).toBe(false);
    expect(wm.last).toBe(4_000);
    expect(wm.advance("orders", 4_500)).toBe(true);
    expect(wm.last).toBe(4_500);
  });

  it("after a recovery is held back by a source without a checkpointed watermark", () => {
    const wm = new InputWatermarks(["left", "right"]);
    wm.reset({ left: 4_000 });
    expect(wm.last).toBe(Number.NEGATIVE_INFINITY);
    expect(wm.advance("right", 3_000)).toBe(true);
    expect(wm.last).toBe(3_000);
  });
});
