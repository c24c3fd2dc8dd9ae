/**
 * BucketWatch, the KV watch that outlives its consumer (groups, lookup tables and warm-ups follow
 * their buckets with it): it delivers what the watched keys hold before `open` resolves, then
 * every later entry once and in order, across restarts of its consumer; it ends when stopped or
 * when its bucket is gone.
 */
import { Kvm } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import { systemClock } from "../src/core/clock.ts";
import { BucketWatch } from "../src/state/bucket-watch.ts";
import { useNatsServer, waitFor } from "./support/nats.ts";

describe("BucketWatch", () => {
  const nats = useNatsServer();

  it(
    "delivers the watched keys once each, in order, across restarts, and ends with its bucket",
    { timeout: 30_000 },
    async () => {
      const nc = await nats.connect();
      const kv = await new Kvm(nc).create("watched", { history: 1 });
      for (let i = 0; i < 5; i++) await kv.put(`a.${i}`, String(i));
      await kv.put("b.0", "not watched");
      const seen: { key: string; value: string; live: boolean }[] = [];
      const logs: string[] = [];
      const watch = await BucketWatch.open(nc, "watched", {
        name: "test",
        key: "a.>",
        clock: systemClock,
        log: (event) => void logs.push(event),
        onEntry: (entry, live) => void seen.push({ key: entry.key, value: entry.string(), live }),
      });
      // Resolved with what the keys held, none of the others'.
      expect(seen.map((e) => e.key)).toEqual(["a.0", "a.1", "a.2", "a.3", "a.4"]);
      expect(seen.every((e) => !e.live)).toBe(true);

      await kv.put("a.5", "5");
      await waitFor(() => seen.length === 6, { timeoutMs: 5_000, message: "a.5 delivered" });
      expect(seen[5]).toEqual({ key: "a.5", value: "5", live: true });

      // A new consumer starts after the last entry delivered: what was written meanwhile comes once.
      watch.restart("told to");
      await kv.put("a.1", "updated");
      await kv.put("b.1", "not watched");
      await kv.put("a.6", "6");
      await waitFor(() => seen.length >= 8, { timeoutMs: 5_000, message: "entries after the restart delivered" });
      expect(seen.slice(6).map((e) => `${e.key}=${e.value}`)).toEqual(["a.1=updated", "a.6=6"]);
      expect(logs).toContain("test-watch-restarting");
      expect(logs).toContain("test-watch-restarted");

      // Its bucket gone, a restart finds it gone and the watch ends.
      await kv.destroy();
      watch.restart("told to again");
      await watch.ended;
      expect(logs).toContain("test-watch-ended");
      expect(seen.length).toBe(8);
    },
  );

  it("ends when stopped", async () => {
    const nc = await nats.connect();
    await new Kvm(nc).create("stopped", { history: 1 });
    const watch = await BucketWatch.open(nc, "stopped", { name: "test", clock: systemClock, onEntry: () => undefined });
    let ended = false;
    void watch.ended.then(() => (ended = true));
    watch.stop();
    await watch.ended;
    expect(ended).toBe(true);
  });
});
