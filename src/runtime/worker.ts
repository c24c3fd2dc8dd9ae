/**
 * A worker runs a pipeline's operator actors in this process: a set of (step, partition)
 * assignments, every partition of every step unless told otherwise, which can grow and shrink
 * while it runs. It provisions what the pipeline writes to (src/runtime/provision.ts), starts an
 * actor per assignment, each recovering from its last checkpoint (src/runtime/supervisor.ts), then
 * reads each source from the lowest position its actors committed (src/runtime/source-reading.ts).
 * When an actor fails, reading stops until every actor runs again, then resumes from the lowest
 * position; an actor skips what it already applied. A change of assignments stops only the
 * readers it touches.
 *
 * @example
 * const worker = await Worker.start(nc, coffeeShop());
 * await worker.release([{ step: "revenue", partition: 3 }]); // a final checkpoint, then another worker may take it
 * await worker.stop(); // on SIGTERM: a final checkpoint per actor
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Fence } from "../core/fence.ts";
import { createPublisher, type Publisher } from "../log/publisher.ts";
import { lastSequence } from "../log/streams.ts";
import type { Pipeline } from "../pipeline/pipeline.ts";
import { LookupReplica } from "../state/lookup.ts";
import { type Assignment, everyPartition } from "./assignments.ts";
import { compile, type Plan } from "./plan.ts";
import { provision } from "./provision.ts";
import { SourceReading } from "./source-reading.ts";
import { type ActorInspection, type ActorStatus, Supervisor } from "./supervisor.ts";

export type { ActorInspection, ActorStatus } from "./supervisor.ts";
export type { Assignment } from "./assignments.ts";

export interface WorkerOptions {
  readonly clock?: Clock;
  /** The (step, partition) pairs to run; default: every partition of every step. */
  readonly assignments?: readonly Assignment[];
  /** Checkpoint every this many ms (default 1000) ... */
  readonly checkpointMs?: number;
  /** ... or after this many events per actor (default 100,000), whichever comes first ... */
  readonly checkpointEvents?: number;
  /**
   * ... or when an actor's input paused this long with events not yet checkpointed, once a
   * quarter of `checkpointMs` passed since its last checkpoint began (default: a tenth of
   * `checkpointMs`; Infinity: never).
   */
  readonly idleCheckpointMs?: number;
  /**
   * Write changed result-table pages this often between checkpoints, in ms (default 100; 0: only
   * at checkpoints). Tables may run ahead of the committed checkpoint; state does not.
   */
  readonly tableFlushMs?: number;
  /** First restart delay of a failed actor (doubles per attempt). */
  readonly backoffMs?: number;
  /** Largest batch handed to the actors. */
  readonly maxBatch?: number;
  /** How often (by `clock`) steps with processing-time timers get a tick. Default 100 ms. */
  readonly tickMs?: number;
  /** Recent input records each actor keeps for inspection (default 20; 0: none). */
  readonly recentInputs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /**
   * Asked before every write, recovery and commit: a worker of a group writes only while its
   * leases cannot have moved (src/cluster/group.ts). Default: never fenced.
   */
  readonly fence?: Fence;
  /** Replicas of the streams and buckets Eddy creates (default 1; 3 on a cluster). */
  readonly replicas?: number;
}

export class Worker {
  #paused = false;
  #stopping = false;
  /** Reading stopped and starting again (after a failure or an assignment change). */
  #resuming: Promise<void> | undefined;

  private constructor(
    readonly nc: NatsConnection,
    readonly pipeline: Pipeline,
    readonly plan: Plan,
    private readonly publisher: Publisher,
    private readonly supervisor: Supervisor,
    private readonly reading: SourceReading,
    private readonly lookups: ReadonlyMap<string, LookupReplica<unknown>>,
    private readonly options: WorkerOptions,
  ) {}

  static async start(nc: NatsConnection, pipeline: Pipeline, options: WorkerOptions = {}): Promise<Worker> {
    const plan = compile(pipeline);
    const clock = options.clock ?? systemClock;
    const publisher = createPublisher(nc, {
      ...(options.clock ? { clock } : {}),
      ...(options.fence ? { fence: options.fence } : {}),
      // On a cluster a stream without a leader answers 503 for a few seconds: re-publish then.
      ...((options.replicas ?? 1) > 1 ? { retryNoResponders: true } : {}),
    });
    const lookups = new Map<string, LookupReplica<unknown>>();
    let worker: Worker | undefined;
    try {
      await provision(nc, plan, options.replicas ?? 1);
      for (const lookup of plan.lookups) {
        const replica = await LookupReplica.open(
          nc,
          lookup.bucket,
          lookup.schema,
          (key, reason) => options.log?.("lookup-value-invalid", { lookup: lookup.id, bucket: lookup.bucket, key, reason }),
          { clock, log: options.log },
        );
        lookups.set(lookup.id, replica);
        options.log?.("lookup-opened", { lookup: lookup.id, bucket: lookup.bucket, entries: replica.size });
      }
      const flushMs = options.tableFlushMs ?? 100;
      const supervisor = await Supervisor.open(nc, plan, publisher, {
        ...options,
        onFailure: () => worker && worker.#pauseAndResume(0),
        lookup: (table, key) => lookups.get(table)!.get(key),
        catchingUp: () => clock.now() - reading.fullBatchAt < 2 * flushMs,
      });
      await supervisor.store.describeSources(Object.fromEntries(
        plan.sources.filter((s) => !s.edge).map((
          s,
        ) => [s.id, { stream: s.stream, subject: s.subject, partitionToken: s.partitionToken }]),
      ));
      const reading: SourceReading = new SourceReading(nc, plan, publisher, supervisor, lookups, {
        clock,
        ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
        ...(options.log ? { log: options.log } : {}),
        onFailure: () => worker && worker.#pauseAndResume(options.backoffMs ?? 1000),
      });
      worker = new Worker(nc, pipeline, plan, publisher, supervisor, reading, lookups, options);
    } catch (error) {
      await publisher.close().catch(() => undefined);
      for (const l of lookups.values()) l.close();
      throw error;
    }
    worker.supervisor.start(options.assignments ?? everyPartition(plan));
    await worker.supervisor.whenRecovered();
    await worker.reading.start();
    return worker;
  }

  /** The assignments this worker runs. */
  get assignments(): Assignment[] {
    return this.supervisor.actors.map(({ step, partition }) => ({ step, partition }));
  }

  /** Source-stage dead letters (decode errors, throwing stateless steps) since this process started. */
  /** Messages read by source since this worker started (an edge's: from its partitions' subjects only). */
  get messagesRead(): Readonly<Record<string, number>> {
    return this.reading.messagesRead;
  }

  get sourceDeadLetters(): number {
    return this.reading.deadLetters;
  }

  /**
   * Run these assignments too: each recovers from its last checkpoint, then its readers start.
   * Readers of other partitions go on (src/runtime/source-reading.ts `around`).
   */
  assign(assignments: readonly Assignment[]): Promise<void> {
    return this.#whileChanging({ added: assignments }, async () => {
      this.supervisor.start(assignments);
      await this.supervisor.whenRecovered();
    });
  }

  /**
   * Let these assignments go without a final checkpoint (this worker may no longer write for
   * them); their readers stop.
   */
  abandon(assignments: readonly Assignment[]): Promise<void> {
    // At once, not after a pending resume: that may be waiting for these very actors to recover.
    this.supervisor.abandon(assignments);
    // With every partition let go, nothing this worker sent and did not hear back about may be
    // sent again (after a rejoin it could land after the next owner's writes).
    if (this.supervisor.actors.length === 0) this.publisher.discardPending("the worker let its partitions go");
    if (this.#stopping) return Promise.resolve();
    return this.#whileChanging({ removed: assignments }, () => Promise.resolve());
  }

  /**
   * Follow a partition's state before taking it over (src/state/warm-up.ts): resolves once what
   * is written of it is read and decoded; its recovery here then waits only for what is newer.
   */
  warm(a: Assignment): Promise<void> {
    return this.supervisor.store.warm(a.step, a.partition);
  }

  /** Stop warming a partition that will not move here after all. */
  cool(a: Assignment): void {
    this.supervisor.store.cool(a.step, a.partition);
  }

  /** Stop running these assignments: their readers stop, then each writes a final checkpoint. */
  release(assignments: readonly Assignment[]): Promise<void> {
    return this.#whileChanging({ removed: assignments }, () => this.supervisor.release(assignments));
  }

  /** Do `change` with the readers it touches stopped, then start them again (from the lowest position). */
  async #whileChanging(
    changing: { readonly added?: readonly Assignment[]; readonly removed?: readonly Assignment[] },
    change: () => Promise<void>,
  ): Promise<void> {
    if (this.#stopping) throw new Error("the worker is stopping");
    // One change (or resume) at a time, in the order asked.
    const previous = this.#resuming;
    const done = (async () => {
      await previous;
      await this.reading.around(changing, change);
    })();
    this.#resuming = done.catch(() => undefined);
    await done;
  }

  /**
   * Stop reading; after `delayMs`, once every actor is running again, read again from the lowest
   * position. Used when an actor fails (it recovers after its backoff) and when a reader stops
   * by itself.
   */
  #pauseAndResume(delayMs: number): void {
    if (this.#paused || this.#stopping) return;
    this.#paused = true;
    // After a change of assignments under way (it starts readers of its own).
    const previous = this.#resuming;
    this.#resuming = (async () => {
      await previous;
      await this.#resume(delayMs);
    })();
  }

  async #resume(delayMs: number): Promise<void> {
    await this.reading.stop();
    if (delayMs > 0) await new Promise<void>((r) => (this.options.clock ?? systemClock).setTimeout(r, delayMs));
    await this.supervisor.whenRecovered();
    this.#paused = false;
    if (!this.#stopping) await this.reading.start();
  }

  /** Stop reading, checkpoint every actor one last time, and stop them. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.supervisor.store.cool();
    await this.#resuming;
    await this.reading.stop();
    await this.supervisor.stop();
    await this.publisher.close();
    for (const l of this.lookups.values()) l.close();
  }

  /** Every operator actor: its lifecycle state, keys, positions. */
  status(): ActorStatus[] {
    return this.supervisor.status();
  }

  /** A sample of one actor's keyed state (at most `sample` keys) and its recent inputs. */
  inspect(step: string, partition: number, sample: number): ActorInspection | undefined {
    return this.supervisor.inspect(step, partition, sample);
  }

  /**
   * Per source (edges included), how many of the messages this worker reads of it (its
   * partitions' share) are not yet in a committed checkpoint of every actor it feeds here. All zero: this worker has caught up with its input.
   */
  async lag(): Promise<Record<string, number>> {
    const lag: Record<string, number> = {};
    for (const { source, subject, fed } of this.reading.readings()) {
      // A reader with a subject filter (a partition's share) ends at the last message on its subjects.
      const last = await lastSequence(this.nc, source.stream, subject);
      const committed = Math.min(...fed.map((a) => a.core.manifest?.positions[source.id] ?? 0));
      lag[source.id] = Math.max(lag[source.id] ?? 0, last - committed);
    }
    return lag;
  }

  /** The lowest committed position of a source over the actors it feeds here. */
  committedPosition(source: string): number {
    return Math.min(...this.supervisor.fedBy(source).map((a) => a.core.manifest?.positions[source] ?? 0));
  }
}
