/**
 * The operator actors of the worker in this process, as the query API serves them (`GET /actors`,
 * `GET /actors/:step/:partition`): each actor's lifecycle state, last checkpoint, keys held,
 * counters and lag, the sources' positions, and on request a look inside one actor (a sample
 * of its keyed state and its most recent inputs). Everything is read from memory: the worker's
 * own fields, and the sources' last sequences from the metrics' background poll.
 *
 * @example
 * actorsView(worker, (stream) => metrics.lastSequence(stream), Date.now());
 * // { pipeline: "coffee-shop", at, sources: [{ id: "orders", lastSequence: 3000, lag: 0, ... }], totals, actors: [...] }
 */
import type { ActorInspection, ActorStatus, Worker } from "../runtime/worker.ts";
import type { MetricsWorker } from "./metrics.ts";

/** What the API reads from a worker: what metrics read, and a look inside an actor. */
export type ServedWorker = MetricsWorker & Pick<Worker, "inspect">;

export interface ActorView extends ActorStatus {
  /** Events in its sources not yet committed by it (the highest over its sources); null until known. */
  readonly lag: number | null;
}

export interface SourceView {
  readonly id: string;
  readonly stream: string;
  /** The stream's last sequence as of the last poll; null until one answered. */
  readonly lastSequence: number | null;
  /** The lowest position applied / committed over the actors it feeds. */
  readonly applied: number;
  readonly committed: number;
  /** lastSequence minus committed; null until known. */
  readonly lag: number | null;
}

export interface ActorsView {
  readonly pipeline: string;
  /** When this view was taken (the server's clock). */
  readonly at: number;
  readonly sources: readonly SourceView[];
  readonly totals: {
    /** Dead letters set aside by operators and while decoding sources. */
    readonly deadLetters: number;
    readonly sourceDeadLetters: number;
    /** Late events per step that judges lateness (a windowed step). */
    readonly lateEvents: Readonly<Record<string, number>>;
  };
  readonly actors: readonly ActorView[];
}

export type LastSequence = (stream: string) => number | undefined;

function lagOf(worker: ServedWorker, status: ActorStatus, lastSequence: LastSequence): number | null {
  const plan = worker.plan.actors.find((p) => p.step === status.step);
  let lag: number | null = null;
  for (const source of plan?.sources ?? []) {
    const stream = worker.plan.sources.find((s) => s.id === source)?.stream;
    const last = stream === undefined ? undefined : lastSequence(stream);
    if (last !== undefined) lag = Math.max(lag ?? 0, last - (status.committed[source] ?? 0));
  }
  return lag;
}

export function actorsView(worker: ServedWorker, lastSequence: LastSequence, now: number): ActorsView {
  const status = worker.status();
  const actors = status.map((s) => ({ ...s, lag: lagOf(worker, s, lastSequence) }));
  const sources = worker.plan.sources.map((source) => {
    const fed = status.filter((s) => worker.plan.actors.find((p) => p.step === s.step)?.sources.includes(source.id));
    const applied = fed.length ? Math.min(...fed.map((s) => s.positions[source.id] ?? 0)) : 0;
    const committed = fed.length ? Math.min(...fed.map((s) => s.committed[source.id] ?? 0)) : 0;
    const last = lastSequence(source.stream);
    return {
      id: source.id,
      stream: source.stream,
      lastSequence: last ?? null,
      applied,
      committed,
      lag: last === undefined ? null : Math.max(0, last - committed),
    };
  });
  const lateEvents: Record<string, number> = {};
  for (const plan of worker.plan.actors) {
    if (plan.windowed) lateEvents[plan.step] = status.filter((s) => s.step === plan.step).reduce((n, s) => n + s.lateEvents, 0);
  }
  const operatorDeadLetters = status.reduce((n, s) => n + s.deadLetters, 0);
  return {
    pipeline: worker.pipeline.id,
    at: now,
    sources,
    totals: {
      deadLetters: operatorDeadLetters + worker.sourceDeadLetters,
      sourceDeadLetters: worker.sourceDeadLetters,
      lateEvents,
    },
    actors,
  };
}

export interface ActorDetail extends ActorView {
  readonly sample: ActorInspection["sample"];
  readonly recent: ActorInspection["recent"];
}

/** One actor with a sample of its keyed state and its recent inputs, or undefined if there is none. */
export function actorDetail(
  worker: ServedWorker,
  step: string,
  partition: number,
  sample: number,
  lastSequence: LastSequence,
): ActorDetail | undefined {
  const inspection = worker.inspect(step, partition, sample);
  if (!inspection) return undefined;
  return {
    ...inspection.status,
    lag: lagOf(worker, inspection.status, lastSequence),
    sample: inspection.sample,
    recent: inspection.recent,
  };
}
