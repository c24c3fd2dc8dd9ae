/**
 * A group: the workers of one pipeline, in any number of processes on any number of machines,
 * sharing its partitions over NATS alone. Each member heartbeats (src/cluster/membership.ts),
 * computes from what it sees who should own each partition (src/cluster/balance.ts) and takes or
 * gives back leases with compare-and-set (src/cluster/leases.ts); its Worker runs exactly the
 * partitions it holds; a partition moves once its new owner has read its state (warm-ups.ts).
 * A member writes only while its heartbeat is fresh (src/core/fence.ts), so one that was paused
 * or cut off writes nothing after the others took over.
 *
 * @example
 * const group = await Group.join(nc, coffeeShop(), { member: { host: "a", runtime: "node", pid: 1 } });
 * group.worker.assignments; // the partitions this process holds now
 * await group.leave(); // on SIGTERM: a final checkpoint each, leases given back, membership deleted
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type Clock, systemClock } from "../core/clock.ts";
import { FencedError } from "../core/errors.ts";
import type { Fence } from "../core/fence.ts";
import { groupBucket } from "../core/names.ts";
import { waitForLeader } from "../log/streams.ts";
import { keysOf } from "../state/bucket.ts";
import { BucketWatch } from "../state/bucket-watch.ts";
import type { Pipeline } from "../pipeline/pipeline.ts";
import { type Assignment, assignmentKey, everyPartition } from "../runtime/assignments.ts";
import { Worker, type WorkerOptions } from "../runtime/worker.ts";
import { balance } from "./balance.ts";
import { Leases } from "./leases.ts";
import { type Heartbeat, type MemberInfo, Membership } from "./membership.ts";
import { WarmUps } from "./warm-ups.ts";

export interface GroupOptions extends Omit<WorkerOptions, "assignments" | "fence"> {
  /** Who this member is (id default: host, pid and a random suffix). */
  readonly member?: Partial<MemberInfo>;
  /** A member not heard from for this long is gone and its partitions move (default 5000 ms). */
  readonly memberTimeoutMs?: number;
  /** How often members heartbeat (default: a fifth of the timeout). */
  readonly heartbeatMs?: number;
  /**
   * A partition given away waits for its new owner to have read its state (src/cluster/warm-ups.ts)
   * at most this long (default 10000 ms; 0: no warm-up, hand over at once).
   */
  readonly warmUpMs?: number;
}

/** What a member sees of its group. */
export interface GroupView {
  readonly self: string;
  readonly members: readonly { id: string; host: string; runtime: string; pid: number; ageMs: number }[];
  /** Assignment key (`<step>.<partition>`) to the member holding its lease. */
  readonly owners: Readonly<Record<string, string>>;
}

const defaultWarmUpMs = 10_000;

export class Group {
  #reconciling: Promise<void> | undefined;
  #again = false;
  #leaving = false;
  /** Set the moment a write is refused: every actor is let go before any is taken again. */
  private suspended = false;
  /** Partitions this member is to take over, being warmed (by assignment key). */
  readonly #warming = new Map<string, Assignment>();
  /** Partitions this member is to give away, since when (waiting for their new owners to be warm). */
  readonly #givingSince = new Map<string, number>();
  #wake: unknown;

  private constructor(
    readonly worker: Worker,
    readonly membership: Membership,
    readonly leases: Leases,
    private readonly warmUps: WarmUps,
    private readonly watch: BucketWatch,
    private readonly clock: Clock,
    private readonly options: GroupOptions,
  ) {}

  private get log(): GroupOptions["log"] {
    return this.options.log;
  }

  static async join(nc: NatsConnection, pipeline: Pipeline, options: GroupOptions = {}): Promise<Group> {
    const clock = options.clock ?? systemClock;
    const bucket = groupBucket(pipeline.id);
    const kv = await new Kvm(nc).create(bucket, { history: 1, storage: "file", replicas: options.replicas ?? 1 });
    // On a cluster, a bucket just created (by another worker joining at the same moment) answers once it has a leader.
    if ((options.replicas ?? 1) > 1) await waitForLeader(await jetstreamManager(nc), `KV_${bucket}`);
    const info: MemberInfo = {
      host: options.member?.host ?? "unknown",
      runtime: options.member?.runtime ?? "unknown",
      pid: options.member?.pid ?? 0,
      id: options.member?.id ??
        `${(options.member?.host ?? "worker").replace(/[^-\w]/g, "_")}-${options.member?.pid ?? 0}-${
          Math.random().toString(36).slice(2, 8)
        }`,
    };
    let group: Group | undefined;
    const changed = () => group?.reconcileSoon();
    const log = options.log;
    const membership = new Membership(kv, info, {
      clock,
      timeoutMs: options.memberTimeoutMs ?? 5000,
      ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
      onChange: changed,
      onLapse: () => group?.suspend("heartbeat late"),
      onBlind: (reason) => watch.restart(reason),
      ...(log ? { log } : {}),
    });
    const leases = new Leases(kv, { onChange: changed });
    const warmUps = new WarmUps(kv, { onChange: changed });
    // One watch of the whole bucket feeds both: this worker's own heartbeats coming back through
    // it show that it is current, for the leases as well as the members.
    const watch = await BucketWatch.open(nc, bucket, {
      name: "group",
      clock,
      log,
      onEntry: (entry) => {
        if (entry.key.startsWith("members.")) membership.apply(entry);
        else if (entry.key.startsWith("leases.")) leases.apply(entry);
        else if (entry.key.startsWith("warm.")) warmUps.apply(entry);
      },
    });
    try {
      await membership.start();
    } catch (error) {
      watch.stop();
      throw error;
    }
    const fence: Fence = {
      check: (what) => {
        if (group?.suspended || !membership.valid()) {
          group?.suspend(`write to ${what} refused`);
          throw new FencedError({ key: what, message: `${what}: this worker's leases may have moved (its heartbeat is late)` });
        }
      },
      holds: async (step, partition) => {
        const owner = await leases.read({ step, partition });
        if (owner !== info.id || group?.suspended || !membership.valid()) {
          throw new FencedError({
            key: `${step}.${partition}`,
            message: owner !== info.id
              ? `${step}.${partition} is leased to ${owner ?? "nobody"}, not to ${info.id}`
              : `${step}.${partition}: ${info.id} holds its lease but is suspended (its heartbeat is late)`,
          });
        }
      },
    };
    let worker: Worker;
    try {
      worker = await Worker.start(nc, pipeline, { ...options, assignments: [], fence });
    } catch (error) {
      watch.stop();
      await membership.leave();
      throw error;
    }
    group = new Group(worker, membership, leases, warmUps, watch, clock, options);
    await group.#reconcileNow();
    return group;
  }

  get id(): string {
    return this.membership.self.id;
  }

  /** The members this one sees, and who holds each partition. */
  view(): GroupView {
    return {
      self: this.id,
      members: [
        { ...this.membership.self, ageMs: 0 },
        ...this.membership.members().map(({ heartbeat, ageMs }) => ({
          id: heartbeat.id,
          host: heartbeat.host,
          runtime: heartbeat.runtime,
          pid: heartbeat.pid,
          ageMs,
        })),
      ],
      owners: Object.fromEntries(this.leases.owners()),
    };
  }

  /** Resolves once this member runs exactly the partitions the balance gives it and it could take. */
  settled(): Promise<void> {
    return this.#reconciling ?? Promise.resolve();
  }

  /**
   * Leave the group: a final checkpoint of every partition, its lease given back (the new owner
   * starts from that checkpoint, nothing replayed), then the membership entry deleted.
   */
  async leave(): Promise<void> {
    if (this.#leaving) return;
    this.#leaving = true;
    this.clock.clearTimeout(this.#wake);
    await this.#reconciling;
    const held = this.worker.assignments;
    await this.worker.stop();
    for (const a of held) await this.leases.release(a, this.id).catch(() => false);
    this.watch.stop();
    await this.membership.leave();
  }

  private suspend(reason: string): void {
    if (this.suspended || this.#leaving) return;
    this.suspended = true;
    this.log?.("group-suspended", {
      member: this.id,
      reason,
      // Under half the membership timeout unless paused: nobody may take these partitions yet.
      sinceHeartbeatMs: this.membership.sinceHeartbeatMs(),
      partitions: this.worker.assignments.map(assignmentKey),
    });
    // Let every actor go now (a rebalance in progress may be waiting on them), then rejoin.
    void this.worker.abandon(this.worker.assignments).catch(() => undefined);
    this.reconcileSoon();
  }

  private reconcileSoon(): void {
    if (this.#leaving) return;
    if (this.#reconciling) {
      this.#again = true;
      return;
    }
    void this.#reconcileNow();
  }

  #reconcileNow(): Promise<void> {
    const run = async () => {
      do {
        this.#again = false;
        try {
          await this.#reconcile();
        } catch (error) {
          this.log?.("rebalance-failed", { member: this.id, error: String(error) });
          // Try again at the next heartbeat's view change; leases are safe either way.
        }
      } while (this.#again && !this.#leaving);
      this.#reconciling = undefined;
    };
    this.#reconciling = run();
    return this.#reconciling;
  }

  /** One round: let go of what this member may not or should not run, then take what it should. */
  async #reconcile(): Promise<void> {
    if (this.#leaving) return;
    const worker = this.worker;
    if (this.suspended || !this.membership.valid()) {
      // Cannot write: drop every actor without a final checkpoint (it could not be written);
      // what was not committed is replayed by the next owner, which may be this one again.
      if (worker.assignments.length > 0) await worker.abandon(worker.assignments);
      if (!this.membership.valid()) return;
      this.suspended = false;
      this.log?.("group-resumed", { member: this.id });
    }
    const all = everyPartition(worker.plan);
    const live = this.membership.live();
    const owners = new Map([...this.leases.owners()].filter(([, owner]) => live.includes(owner)));
    const target = balance(all, live, owners);
    const mine = (a: Assignment) => target.get(assignmentKey(a)) === this.id;

    const lost = worker.assignments.filter((a) => this.leases.ownerOf(a) !== this.id);
    if (lost.length > 0) {
      this.log?.("partitions-lost", { member: this.id, partitions: lost.map(assignmentKey) });
      await worker.abandon(lost);
    }
    const runningNow = new Set(worker.assignments.map(assignmentKey));
    this.#warmUp(
      all.filter((a) => {
        if (!mine(a) || runningNow.has(assignmentKey(a))) return false;
        const owner = this.leases.ownerOf(a);
        return owner !== undefined && owner !== this.id && live.includes(owner);
      }),
      mine,
    );
    const give = this.#readyToGive(worker.assignments.filter((a) => !mine(a)), target);
    if (give.length > 0) {
      this.log?.("partitions-releasing", { member: this.id, partitions: give.map(assignmentKey) });
      await worker.release(give);
      for (const a of give) await this.leases.release(a, this.id);
      this.log?.("partitions-released", { member: this.id, partitions: give.map(assignmentKey) });
    }
    // Leases this member holds but does not run (it was suspended, or restarted under the same id).
    const running = new Set(worker.assignments.map(assignmentKey));
    for (const a of all) {
      if (this.leases.ownerOf(a) === this.id && !running.has(assignmentKey(a)) && !mine(a)) await this.leases.release(a, this.id);
    }
    const taken: Assignment[] = [];
    for (const a of all) {
      if (!mine(a) || running.has(assignmentKey(a))) continue;
      const owner = this.leases.ownerOf(a);
      if (owner !== undefined && owner !== this.id && live.includes(owner)) continue; // its owner gives it back first
      if (await this.leases.take(a, this.id)) taken.push(a);
    }
    // Suspended meanwhile (a late heartbeat while this round released or took leases): the actors
    // would be fenced at their recovery, and the assignment would wait for them for ever, this
    // round with it, so the next one, which resumes, would never come. The next round takes them.
    if (this.suspended || !this.membership.valid()) return void (this.#again = true);
    if (taken.length > 0) {
      this.log?.("partitions-taken", { member: this.id, partitions: taken.map(assignmentKey) });
      await worker.assign(taken);
      for (const a of taken) {
        if (this.#warming.delete(assignmentKey(a))) void this.warmUps.withdraw(a).catch(() => undefined);
      }
    }
  }

  /**
   * Warm the partitions this member is to take over from a live owner (`toWarm`), each announced
   * once its state is read; stop warming those that are no longer to come here.
   */
  #warmUp(toWarm: readonly Assignment[], mine: (a: Assignment) => boolean): void {
    if ((this.options.warmUpMs ?? defaultWarmUpMs) <= 0) return;
    for (const [key, a] of this.#warming) {
      if (mine(a)) continue; // still to come (its lease may be free by now: its recovery takes the warm-up)
      this.#warming.delete(key);
      this.worker.cool(a);
      void this.warmUps.withdraw(a).catch(() => undefined);
    }
    for (const a of toWarm) {
      const key = assignmentKey(a);
      if (this.#warming.has(key)) continue;
      this.#warming.set(key, a);
      const started = this.clock.now();
      void this.worker.warm(a)
        .then(async () => {
          if (this.#warming.get(key) !== a) return;
          this.log?.("partition-warm", { member: this.id, partition: key, ms: Math.round(this.clock.now() - started) });
          await this.warmUps.announce(a, this.id);
        })
        .catch((error) => this.log?.("warm-up-failed", { member: this.id, partition: key, error: String(error) }));
    }
  }

  /**
   * Of the partitions this member should give away, those to give now: their new owner said it
   * has their state warm, or it has not for `warmUpMs`. A reconcile is due when the next waits out.
   */
  #readyToGive(give: readonly Assignment[], target: ReadonlyMap<string, string>): Assignment[] {
    const warmUpMs = this.options.warmUpMs ?? defaultWarmUpMs;
    const now = this.clock.now();
    const giving = new Set(give.map(assignmentKey));
    for (const key of this.#givingSince.keys()) if (!giving.has(key)) this.#givingSince.delete(key);
    let wait = Number.POSITIVE_INFINITY;
    const ready = give.filter((a) => {
      const key = assignmentKey(a);
      const to = target.get(key);
      if (warmUpMs <= 0 || to === undefined || this.warmUps.of(a) === to) return true;
      const since = this.#givingSince.get(key) ?? now;
      this.#givingSince.set(key, since);
      const left = since + warmUpMs - now;
      if (left > 0) {
        wait = Math.min(wait, left);
        return false;
      }
      this.log?.("warm-up-not-seen", { member: this.id, partition: key, to, waitedMs: Math.round(now - since) });
      return true;
    });
    if (Number.isFinite(wait)) {
      this.clock.clearTimeout(this.#wake);
      this.#wake = this.clock.setTimeout(() => this.reconcileSoon(), wait);
    }
    return ready;
  }
}

/** What a group's bucket says now, read once (for `eddy status`): its members and who holds each lease. */
export async function readGroup(
  nc: NatsConnection,
  pipelineId: string,
): Promise<{ members: Heartbeat[]; owners: Record<string, string> } | undefined> {
  const bucket = groupBucket(pipelineId);
  const kv = await new Kvm(nc).open(bucket, { bindOnly: true });
  if (!(await kv.status().then(() => true, () => false))) return undefined;
  const members: Heartbeat[] = [];
  const owners: Record<string, string> = {};
  const decoder = new TextDecoder();
  for (const key of await keysOf(nc, bucket, ">")) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    const value = JSON.parse(decoder.decode(entry.value));
    if (key.startsWith("members.")) members.push(value as Heartbeat);
    else if (key.startsWith("leases.") && value.owner) owners[key.slice("leases.".length)] = value.owner as string;
  }
  return { members: members.sort((a, b) => (a.id < b.id ? -1 : 1)), owners };
}
