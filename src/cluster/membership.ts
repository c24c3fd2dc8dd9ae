/**
 * Membership: the workers of a pipeline's group, each announcing itself in the group's KV bucket
 * under `members.<id>` with a heartbeat. A member another worker has not seen beat for
 * `timeoutMs` (by that worker's own clock: no two machines' clocks are compared) is gone. A worker
 * counts itself a member only until half the timeout after its last heartbeat that NATS
 * acknowledged: it stops writing well before anyone else may take its partitions, and says so
 * (`onLapse`) the moment that time passes.
 *
 * A worker judges the others only by a view it knows to be current: its own heartbeats come back
 * through its watch of the bucket, and a member is gone when its last beat is `timeoutMs` older
 * than the last of this worker's own beats seen coming back. So a worker cut off from NATS, or
 * whose watch is stuck (a leader change on a cluster), declares nobody gone meanwhile; when its
 * own beats stop coming back although NATS acknowledged them, it asks for a new watch
 * (`onBlind`); and after it could not see for half the timeout or more, every member gets a full
 * timeout from then to show up again.
 *
 * @example
 * const members = new Membership(kv, { id: "w1", host: "a", runtime: "node", pid: 1 }, { clock, timeoutMs: 5000, onChange });
 * const watch = await BucketWatch.open(nc, bucket, { name: "group", clock, onEntry: (e) => members.apply(e) });
 * await members.start();
 * members.live(); // ["w1", "w2"]
 * members.valid(); // false once this worker's last acknowledged heartbeat is too old
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { Clock } from "../core/clock.ts";

export interface MemberInfo {
  readonly id: string;
  readonly host: string;
  readonly runtime: string;
  readonly pid: number;
}

/** What a member writes with each heartbeat. */
export interface Heartbeat extends MemberInfo {
  readonly beat: number;
  /** Wall-clock time of the beat (for people; nobody compares it with their own clock). */
  readonly at: number;
  readonly startedAt: number;
  /** The member's membership timeout (ms), so that observers judge it as its peers do. */
  readonly timeoutMs?: number;
}

export interface MembershipOptions {
  readonly clock: Clock;
  /** A member not seen to beat for this long is gone. */
  readonly timeoutMs: number;
  /** How often to beat (default: a fifth of the timeout). */
  readonly heartbeatMs?: number;
  /** The view changed (a member came, left or went silent), or this worker's own validity did. */
  readonly onChange: () => void;
  /**
   * This worker may no longer write: half the timeout passed since its last acknowledged heartbeat
   * was sent (it was paused, cut off from NATS, or NATS is slow).
   */
  readonly onLapse?: () => void;
  /** This worker's acknowledged heartbeats do not come back through its watch: the watch is stuck. */
  readonly onBlind?: (reason: string) => void;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export const memberKey = (id: string): string => `members.${id}`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Membership {
  /** Other members, with the last heartbeat seen and when (by this worker's clock). */
  readonly #seen = new Map<string, { heartbeat: Heartbeat; at: number; revision: number }>();
  #validUntil = Number.NEGATIVE_INFINITY;
  /** When the last acknowledged heartbeat was sent. */
  #lastBeatAt = Number.NEGATIVE_INFINITY;
  /** When the last of this worker's heartbeats seen back on the watch was sent: its view is current up to then. */
  #seeingAt = Number.NEGATIVE_INFINITY;
  /** The highest revision of this worker's own entry the watch delivered. */
  #ownRevision = 0;
  /** Acknowledged heartbeats not yet seen back on the watch. */
  #unseen: { revision: number; sentAt: number; ackedAt: number }[] = [];
  #beat = 0;
  #timer: unknown;
  #lapseTimer: unknown;
  #stopped = false;
  readonly #startedAt = Date.now();

  /** Nothing happens before `start()`; the group's watch hands this worker its entries (`apply`) meanwhile. */
  constructor(readonly kv: KV, readonly self: MemberInfo, readonly options: MembershipOptions) {}

  /** Announce this worker and beat from now on. Resolves after the first acknowledged heartbeat. */
  async start(): Promise<void> {
    await this.#heartbeat();
    this.#arm();
  }

  get heartbeatMs(): number {
    return this.options.heartbeatMs ?? Math.max(50, Math.floor(this.options.timeoutMs / 5));
  }

  /** Whether this worker may still write: its last acknowledged heartbeat is recent enough. */
  valid(): boolean {
    return this.options.clock.now() < this.#validUntil;
  }

  /** How long ago (by this worker's clock) its last acknowledged heartbeat was sent. */
  sinceHeartbeatMs(): number {
    return this.options.clock.now() - this.#lastBeatAt;
  }

  /** The members seen beating within the timeout of this worker's current view, this worker among them while valid; sorted. */
  live(): string[] {
    const ids = [...this.#seen].filter(([, s]) => !this.#gone(s.at)).map(([id]) => id);
    if (this.valid()) ids.push(this.self.id);
    return [...new Set(ids)].sort();
  }

  /** Every member seen, with how long ago its last beat was seen (ms). */
  members(): { heartbeat: Heartbeat; ageMs: number }[] {
    const now = this.options.clock.now();
    return [...this.#seen.values()].map((s) => ({ heartbeat: s.heartbeat, ageMs: now - s.at }));
  }

  /** An entry under `members.` from the group's watch. */
  apply(entry: KvWatchEntry): void {
    const id = entry.key.slice("members.".length);
    if (id === this.self.id) {
      this.#ownRevision = Math.max(this.#ownRevision, entry.revision);
      this.#sawOwn();
      return;
    }
    if (entry.operation !== "PUT") {
      if (this.#seen.delete(id)) this.options.onChange();
      return;
    }
    const heartbeat = JSON.parse(decoder.decode(entry.value)) as Heartbeat;
    const known = this.#seen.get(id);
    this.#seen.set(id, { heartbeat, at: this.options.clock.now(), revision: entry.revision });
    if (!known) {
      this.options.log?.("member-seen", { member: id, host: heartbeat.host, runtime: heartbeat.runtime });
      this.options.onChange();
    }
  }

  /** Leave: stop beating and delete this worker's entry, so the others need not wait for the timeout. */
  async leave(): Promise<void> {
    this.#stopped = true;
    this.options.clock.clearTimeout(this.#timer);
    this.options.clock.clearTimeout(this.#lapseTimer);
    this.#validUntil = Number.NEGATIVE_INFINITY;
    await this.kv.delete(memberKey(this.self.id)).catch(() => undefined);
  }

  /** A member whose last beat was seen at `at` is gone: by this worker's current view, it is a timeout old. */
  #gone(at: number): boolean {
    return this.#seeingAt - at >= this.options.timeoutMs;
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.options.clock.setTimeout(async () => {
      this.#checkEchoes();
      await this.#heartbeat().catch((error) => this.options.log?.("heartbeat-failed", { error: String(error) }));
      this.#noticeChanges();
      this.#arm();
    }, this.heartbeatMs);
  }

  async #heartbeat(): Promise<void> {
    const sentAt = this.options.clock.now();
    if (sentAt >= this.#validUntil && this.#beat > 0) this.options.onLapse?.();
    const heartbeat: Heartbeat = {
      ...this.self,
      beat: ++this.#beat,
      at: Date.now(),
      startedAt: this.#startedAt,
      timeoutMs: this.options.timeoutMs,
    };
    // An ack later than half the timeout could not extend anything: give up then, and beat again.
    const revision = await this.kv.put(memberKey(this.self.id), encoder.encode(JSON.stringify(heartbeat)), {
      timeout: Math.max(100, Math.floor(this.options.timeoutMs / 2)),
    });
    if (this.#stopped) return;
    this.#unseen.push({ revision, sentAt, ackedAt: this.options.clock.now() });
    this.#sawOwn(); // the watch may have delivered it before the ack came
    this.#lastBeatAt = Math.max(this.#lastBeatAt, sentAt);
    if (sentAt + this.options.timeoutMs / 2 <= this.#validUntil) return;
    this.#validUntil = sentAt + this.options.timeoutMs / 2;
    this.options.clock.clearTimeout(this.#lapseTimer);
    this.#lapseTimer = this.options.clock.setTimeout(() => {
      if (!this.#stopped && !this.valid()) this.options.onLapse?.();
    }, this.#validUntil - this.options.clock.now());
  }

  /** Acknowledged beats up to the revision the watch delivered are seen: the view is current up to when they were sent. */
  #sawOwn(): void {
    let sentAt = Number.NEGATIVE_INFINITY;
    this.#unseen = this.#unseen.filter((
      b,
    ) => (b.revision <= this.#ownRevision ? ((sentAt = Math.max(sentAt, b.sentAt)), false) : true));
    if (sentAt <= this.#seeingAt) return;
    if (sentAt - this.#seeingAt >= this.options.timeoutMs / 2) {
      // This worker could not see for a while (cut off, paused, its watch stuck): what it saw of
      // the others before is no ground to judge them by, so each gets a full timeout from now.
      const now = this.options.clock.now();
      for (const s of this.#seen.values()) s.at = Math.max(s.at, now);
    }
    this.#seeingAt = sentAt;
  }

  /** Before each beat: a beat acknowledged two intervals ago (at least a second) and still not seen back means the watch is stuck. */
  #checkEchoes(): void {
    const oldest = this.#unseen[0];
    if (!oldest) return;
    const waitedMs = this.options.clock.now() - oldest.ackedAt;
    if (waitedMs < Math.max(1000, 2 * this.heartbeatMs)) return;
    this.#unseen = []; // the next verdict waits for a beat acknowledged after the new watch began
    this.options.onBlind?.(`heartbeat ${oldest.revision} acknowledged ${waitedMs} ms ago, not seen on the watch`);
  }

  /** Tell the owner to look again, and forget members gone silent. */
  #noticeChanges(): void {
    // Every beat: a round that finds nothing to do costs a balance over the partitions, and one
    // that failed (a lease write timed out) is tried again.
    this.options.onChange();
    // Forget members long gone, and delete their entries (unless they beat since), so that a
    // worker joining later need not wait a timeout to see that they are gone.
    for (const [id, s] of this.#seen) {
      if (!this.#gone(s.at)) continue;
      this.#seen.delete(id);
      this.options.log?.("member-gone", { member: id, silentMs: this.options.clock.now() - s.at });
      void this.kv.delete(memberKey(id), { previousSeq: s.revision }).catch(() => undefined);
    }
  }
}
