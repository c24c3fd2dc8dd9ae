/**
 * A replay far behind: when a worker starts well behind the end of a source stream (a new
 * pipeline over a long log, or a restart after downtime), show its progress to the end of the
 * stream as it was at start (src/cli/progress.ts), then say it caught up.
 *
 * @example
 * const catchUp = await followCatchUp(nc, worker, { terminal: platform.errInteractive, write: platform.err });
 * // replaying orders  [######..................]  25%  250,000/1,000,000 events  61,000/s  ETA 12 s
 * catchUp.stop(); // on shutdown
 */
import { lastSequence } from "../log/streams.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Worker } from "../runtime/worker.ts";
import { progress } from "./progress.ts";

export interface CatchUpOptions {
  readonly terminal: boolean;
  readonly write: (text: string) => void;
  /** Show nothing unless a source is at least this many events behind (default 50,000). */
  readonly minBehind?: number;
  readonly clock?: Clock;
  /** How often to look at the worker's positions (default 250 ms). */
  readonly pollMs?: number;
  /** Plain-line interval when not on a terminal (default 5000 ms). */
  readonly everyMs?: number;
}

export async function followCatchUp(
  nc: NatsConnection,
  worker: Worker,
  options: CatchUpOptions,
): Promise<{ stop(): void }> {
  const clock = options.clock ?? systemClock;
  const position = (source: string) =>
    Math.min(...worker.status().filter((a) => source in a.positions).map((a) => a.positions[source]!));
  const timers: unknown[] = [];
  // No answer (NATS went away meanwhile): no progress bar for that source, and no failure either.
  const lasts = await Promise.all(
    worker.plan.sources.map((source) => lastSequence(nc, source.stream, source.subject).catch(() => undefined)),
  );
  for (const [i, source] of worker.plan.sources.entries()) {
    const last = lasts[i];
    if (last === undefined) continue;
    const at = position(source.id);
    const from = Number.isFinite(at) ? at : 0;
    if (last - from < (options.minBehind ?? 50_000)) continue;
    const bar = progress({
      label: `replaying ${source.stream}`,
      total: last - from,
      unit: "events",
      terminal: options.terminal,
      write: options.write,
      clock,
      ...(options.everyMs === undefined ? {} : { everyMs: options.everyMs }),
    });
    const index = timers.length;
    const poll = () => {
      const at = position(source.id);
      bar.update(Math.max(0, at - from));
      if (at >= last) bar.done("caught up");
      else timers[index] = clock.setTimeout(poll, options.pollMs ?? 250);
    };
    timers.push(clock.setTimeout(poll, options.pollMs ?? 250));
  }
  return { stop: () => timers.forEach((t) => clock.clearTimeout(t)) };
}
