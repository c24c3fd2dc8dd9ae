/**
 * Supervision: the operator actors a worker runs, one per assignment (step, partition). It
 * starts them (each recovers its partition from its last checkpoint, then runs), tells the
 * worker when one fails (it restarts by itself after its backoff: the lifecycle machine), and
 * drains them on release or stop (a final checkpoint each). The actors of a worker share one
 * checkpoint store, a bound on concurrent checkpoints, and one table flusher.
 *
 * @example
 * const supervisor = await Supervisor.open(nc, plan, publisher, { clock, onFailure: () => pauseReading() });
 * supervisor.start(everyPartition(plan));
 * await supervisor.whenRecovered();
 * await supervisor.release([{ step: "revenue", partition: 3 }]);
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { waitFor } from "xstate";
import { type LifecycleState, lifecycleState } from "../../actors/lifecycle.ts";
import type { EdgePlan } from "../../actors/edge-output.ts";
import type { Rec } from "../../actors/operator.ts";
import { type OperatorActor, type OperatorActorRef, startOperatorActor } from "../../actors/operator-actor.ts";
import { TableFlusher } from "../../actors/table-flush.ts";
import type { CheckpointHistogram } from "../core/checkpoint-histogram.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Fence } from "../core/fence.ts";
import type { Key } from "../core/partition.ts";
import type { Publisher } from "../log/publisher.ts";
import { natsOutputLog, type OutputLog } from "../log/record-batch.ts";
import { CheckpointSlots, CheckpointStore } from "../state/checkpoint.ts";
import { type Assignment, assignmentKey } from "./assignments.ts";
import { type ActorPlan, edgePlan, type Plan } from "./plan.ts";

export interface SupervisorOptions {
  readonly clock?: Clock;
  readonly checkpointMs?: number;
  readonly checkpointEvents?: number;
  readonly idleCheckpointMs?: number;
  readonly tableFlushMs?: number;
  readonly backoffMs?: number;
  readonly tickMs?: number;
  readonly recentInputs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
  /** Asked before every recovery and commit (src/core/fence.ts). */
  readonly fence?: Fence;
  /** Replicas of the state bucket (default 1). */
  readonly replicas?: number;
  /** An actor failed (it recovers after its backoff): the worker stops feeding it meanwhile. */
  readonly onFailure?: (actor: SupervisedActor) => void;
  /** The current value of a lookup table's key (edges' writers run their readers' chains, lookup joins among them). */
  readonly lookup?: (table: string, key: Key) => unknown;
  /** Whether the worker is catching up with a backlog (table flushes wait then). */
  readonly catchingUp?: () => boolean;
}

/** A running operator actor and the records buffered for it (a source reader fills it, then hands it over). */
export interface SupervisedActor {
  readonly step: string;
  readonly partition: number;
  readonly sources: readonly string[];
  readonly core: OperatorActor;
  readonly actor: OperatorActorRef;
  buffer: Rec[];
}

export interface ActorStatus {
  readonly step: string;
  readonly partition: number;
  readonly state: LifecycleState;
  readonly keys: number;
  readonly positions: Readonly<Record<string, number>>;
  readonly committed: Readonly<Record<string, number>>;
  readonly checkpoint: number;
  /** When the last committed checkpoint started (the worker's clock); null before the first. */
  readonly committedAt: number | null;
  readonly eventsIn: number;
  readonly outputs: number;
  readonly deadLetters: number;
  readonly lateEvents: number;
  /** Checkpoints committed since this process started, and the last one's duration and size. */
  readonly checkpoints: number;
  readonly lastCheckpointMs: number;
  readonly lastCheckpointBytes: number;
  /** Every checkpoint's duration and size since this process started (live, not a copy). */
  readonly checkpointHistogram: Readonly<CheckpointHistogram>;
  readonly error?: string;
}

/** A look inside one operator actor: a sample of its keyed state and its last inputs. */
export interface ActorInspection {
  readonly status: ActorStatus;
  /** Up to `sample` keys of its keyed state with their values, in the state's own order. */
  readonly sample: readonly { readonly key: unknown; readonly value: unknown }[];
  /** The last input records it applied, oldest first. */
  readonly recent: readonly { readonly seq: number; readonly key: unknown; readonly time: number; readonly value: unknown }[];
}

export class Supervisor {
  readonly #actors = new Map<string, SupervisedActor>();
  readonly #edges = new Map<string, EdgePlan>();
  readonly #flusher: TableFlusher;
  readonly #flushers = new Map<string, { flush(): void }>();
  /** At most two of the worker's actors write a checkpoint at once. */
  readonly #slots = new CheckpointSlots(2);

  private constructor(
    readonly plan: Plan,
    readonly publisher: Publisher,
    readonly store: CheckpointStore,
    readonly outputLog: OutputLog,
    readonly options: SupervisorOptions,
  ) {
    const clock = options.clock ?? systemClock;
    this.#flusher = new TableFlusher(clock, {
      intervalMs: options.tableFlushMs ?? 100,
      ...(options.catchingUp ? { catchingUp: options.catchingUp } : {}),
    });
  }

  static async open(nc: NatsConnection, plan: Plan, publisher: Publisher, options: SupervisorOptions = {}): Promise<Supervisor> {
    const store = await CheckpointStore.open(nc, plan.pipelineId, publisher, {
      ...(options.fence ? { fence: options.fence } : {}),
      ...(options.replicas ? { replicas: options.replicas } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      log: options.log,
    });
    return new Supervisor(plan, publisher, store, natsOutputLog(nc), options);
  }

  /** The edge out of step `id`, as its writers see it (one for all its actors: routing is synchronous). */
  #edge(id: string): EdgePlan {
    let edge = this.#edges.get(id);
    if (!edge) {
      const lookup = this.options.lookup ?? (() => undefined);
      this.#edges.set(id, edge = edgePlan(this.plan, id, lookup));
    }
    return edge;
  }

  /** The running actors, in the order they started. */
  get actors(): SupervisedActor[] {
    return [...this.#actors.values()];
  }

  actorOf(step: string, partition: number): SupervisedActor | undefined {
    return this.#actors.get(assignmentKey({ step, partition }));
  }

  /** The running actors that source `source` feeds. */
  fedBy(source: string): SupervisedActor[] {
    return this.actors.filter((a) => a.sources.includes(source));
  }

  /** Start an actor per assignment not already running; each recovers, then runs. */
  start(assignments: readonly Assignment[]): void {
    const o = this.options;
    const clock = o.clock ?? systemClock;
    const sourceStreams = Object.fromEntries(this.plan.sources.map((s) => [s.id, s.stream]));
    for (const assignment of assignments) {
      const key = assignmentKey(assignment);
      if (this.#actors.has(key)) continue;
      const plan = this.#planOf(assignment.step);
      const { core, actor } = startOperatorActor({
        pipelineId: this.plan.pipelineId,
        step: plan.step,
        partition: assignment.partition,
        operator: plan.createOperator(),
        sources: plan.sources,
        store: this.store,
        slots: this.#slots,
        publisher: this.publisher,
        clock,
        tables: plan.tables,
        ...(plan.rows ? { rows: plan.rows } : {}),
        streams: plan.streams,
        outputLog: this.outputLog,
        ...(plan.edge ? { edge: this.#edge(plan.edge.id) } : {}),
        ...(plan.lateEdge ? { lateEdge: this.#edge(plan.lateEdge.id) } : {}),
        sourceStreams,
        ...(o.checkpointMs === undefined ? {} : { checkpointMs: o.checkpointMs }),
        ...(o.checkpointEvents === undefined ? {} : { checkpointEvents: o.checkpointEvents }),
        ...(o.idleCheckpointMs === undefined ? {} : { idleCheckpointMs: o.idleCheckpointMs }),
        ...(o.backoffMs === undefined ? {} : { backoffMs: o.backoffMs }),
        ...(o.tickMs === undefined ? {} : { tickMs: o.tickMs }),
        ...(o.recentInputs === undefined ? {} : { recentInputs: o.recentInputs }),
      });
      const running: SupervisedActor = {
        step: plan.step,
        partition: assignment.partition,
        sources: plan.sources,
        core,
        actor,
        buffer: [],
      };
      let failed = false;
      actor.subscribe((snapshot) => {
        const isFailed = snapshot.value === "failed";
        if (isFailed && !failed) {
          o.log?.("actor-failed", { step: running.step, partition: running.partition, error: String(snapshot.context.error) });
          o.onFailure?.(running);
        }
        failed = isFailed;
      });
      this.#actors.set(key, running);
      if (plan.tables.length > 0) {
        const target = { flush: () => actor.send({ type: "flush" }) };
        this.#flushers.set(key, target);
        this.#flusher.add(target);
      }
    }
  }

  #planOf(step: string): ActorPlan {
    const plan = this.plan.actors.find((a) => a.step === step);
    if (!plan) throw new Error(`pipeline "${this.plan.pipelineId}" has no keyed step or sink "${step}"`);
    return plan;
  }

  /**
   * Resolves once every actor has recovered (it runs, checkpoints, or has stopped); an actor
   * let go meanwhile (`abandon`) no longer counts.
   */
  async whenRecovered(): Promise<void> {
    await Promise.all(
      this.actors.map((a) =>
        waitFor(a.actor, (s) => s.matches("running") || s.matches("checkpointing") || s.matches("stopped"), {
          timeout: Infinity,
        }).catch((error) => {
          if (this.#actors.get(assignmentKey(a)) === a) throw error; // stopped for another reason than abandon
        })
      ),
    );
  }

  /** Drain the actors of these assignments (a final checkpoint each) and let them go. */
  async release(assignments: readonly Assignment[]): Promise<void> {
    const leaving = assignments.flatMap((a) => {
      const key = assignmentKey(a);
      const running = this.#actors.get(key);
      if (!running) return [];
      this.#actors.delete(key);
      const target = this.#flushers.get(key);
      if (target) this.#flusher.remove(target);
      this.#flushers.delete(key);
      return [running];
    });
    await drain(leaving);
  }

  /**
   * Let the actors of these assignments go at once, without a final checkpoint: this worker may
   * no longer write for them (their leases may have moved). What they had not committed is
   * replayed by whoever recovers them next.
   */
  abandon(assignments: readonly Assignment[]): void {
    for (const a of assignments) {
      const key = assignmentKey(a);
      const running = this.#actors.get(key);
      if (!running) continue;
      this.#actors.delete(key);
      const target = this.#flushers.get(key);
      if (target) this.#flusher.remove(target);
      this.#flushers.delete(key);
      running.actor.stop();
    }
  }

  /** Drain every actor (their status stays readable). */
  async stop(): Promise<void> {
    this.#flusher.stop();
    await drain(this.actors);
  }

  status(): ActorStatus[] {
    return this.actors.map(statusOf);
  }

  /** A sample of one actor's keyed state (at most `sample` keys) and its recent inputs. */
  inspect(step: string, partition: number, sample: number): ActorInspection | undefined {
    const a = this.actorOf(step, partition);
    if (!a) return undefined;
    const taken: { key: unknown; value: unknown }[] = [];
    if (sample > 0) {
      for (const [key, value] of a.core.state.entries()) {
        taken.push({ key, value });
        if (taken.length >= sample) break;
      }
    }
    const recent = a.core.recent.list().map((r) => ({ seq: r.seq, key: r.key, time: r.time, value: r.value }));
    return { status: statusOf(a), sample: taken, recent };
  }
}

async function drain(actors: readonly SupervisedActor[]): Promise<void> {
  for (const a of actors) a.actor.send({ type: "stop" });
  await Promise.all(actors.map((a) => waitFor(a.actor, (s) => s.status === "done", { timeout: Infinity })));
}

function statusOf(a: SupervisedActor): ActorStatus {
  const { core } = a;
  const manifest = core.manifest;
  const snapshot = a.actor.getSnapshot();
  const error = snapshot.context.error;
  return {
    step: a.step,
    partition: a.partition,
    state: lifecycleState(snapshot),
    keys: core.state.size,
    positions: { ...core.positions },
    committed: { ...(manifest?.positions ?? {}) },
    checkpoint: manifest?.checkpoint ?? 0,
    committedAt: manifest && manifest.checkpoint > 0 ? manifest.committedAt : null,
    eventsIn: core.metrics.eventsIn,
    outputs: core.outputs.count,
    deadLetters: core.setAside.deadLetters,
    lateEvents: core.setAside.lateEvents,
    checkpoints: core.metrics.checkpoints,
    lastCheckpointMs: core.metrics.lastCheckpointMs,
    lastCheckpointBytes: core.metrics.lastCheckpointBytes,
    checkpointHistogram: core.metrics.checkpointHistogram,
    ...(error === undefined ? {} : { error: String(error) }),
  };
}
