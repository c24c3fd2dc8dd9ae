/**
 * Membership: the workers of a pipeline's group, each announcing itself in the group's KV bucket
 * under `members.<id>` with a heartbeat. A member another worker has not seen beat for
 * `timeoutMs` (by that worker's own clock: no two machines' clocks are compared) is gone. A worker
 * counts itself a member only until half the timeout after its last heartbeat that NATS
 * acknowledged: it stops writing well before anyone else may take its partitions.
 *
 * @example
 * const members = await Membership.join(kv, { id: "w1", host: "a", runtime: "node", pid: 1 }, { timeoutMs: 5000, onChange });
 * members.live(); // ["w1", "w2"]
 * members.valid(); // false once this worker's last acknowledged heartbeat is too old
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
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
  /** This worker's heartbeat is due while it may no longer write (it was paused, or NATS is slow). */
  readonly onLapse?: () => void;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export const memberKey = (id: string): string => `members.${id}`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Membership {
  /** Other members, with the last heartbeat seen and when (by this worker's clock). */
  readonly #seen = new Map<string, { heartbeat: Heartbeat; at: number; revision: number }>();
  #validUntil = Number.NEGATIVE_INFINITY;
  #beat = 0;
  #timer: unknown;
  #stopped = false;
  readonly #startedAt = Date.now();

  private constructor(
    readonly kv: KV,
    readonly self: MemberInfo,
    readonly options: MembershipOptions,
    private readonly watch: QueuedIterator<KvWatchEntry>,
  ) {}

  /** Announce this worker and start watching the others. Resolves after the first acknowledged heartbeat. */
  static async join(kv: KV, self: MemberInfo, options: MembershipOptions): Promise<Membership> {
    const watch = await kv.watch({ key: "members.>" });
    const membership = new Membership(kv, self, options, watch);
    void membership.#follow();
    await membership.#heartbeat();
    membership.#arm();
    return membership;
  }

  get heartbeatMs(): number {
    return this.options.heartbeatMs ?? Math.max(50, Math.floor(this.options.timeoutMs / 5));
  }

  /** Whether this worker may still write: its last acknowledged heartbeat is recent enough. */
  valid(): boolean {
    return this.options.clock.now() < this.#validUntil;
  }

  /** The members seen beating within the timeout, this worker among them while valid; sorted. */
  live(): string[] {
    const now = this.options.clock.now();
    const ids = [...this.#seen].filter(([, s]) => now - s.at < this.options.timeoutMs).map(([id]) => id);
    if (this.valid()) ids.push(this.self.id);
    return [...new Set(ids)].sort();
  }

  /** Every member seen, with how long ago its last beat was seen (ms). */
  members(): { heartbeat: Heartbeat; ageMs: number }[] {
    const now = this.options.clock.now();
    return [...this.#seen.values()].map((s) => ({ heartbeat: s.heartbeat, ageMs: now - s.at }));
  }

  /** Leave: stop beating and delete this worker's entry, so the others need not wait for the timeout. */
  async leave(): Promise<void> {
    this.#stopped = true;
    this.options.clock.clearTimeout(this.#timer);
    this.#validUntil = Number.NEGATIVE_INFINITY;
    this.watch.stop();
    await this.kv.delete(memberKey(this.self.id)).catch(() => undefined);
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.options.clock.setTimeout(async () => {
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
    await this.kv.put(memberKey(this.self.id), encoder.encode(JSON.stringify(heartbeat)));
    if (this.#stopped) return;
    this.#validUntil = Math.max(this.#validUntil, sentAt + this.options.timeoutMs / 2);
  }

  /** Tell the owner to look again, and forget members gone silent. */
  #noticeChanges(): void {
    // Every beat: a round that finds nothing to do costs a balance over the partitions, and one
    // that failed (a lease write timed out) is tried again.
    this.options.onChange();
    // Forget members long gone, and delete their entries (unless they beat since), so that a
    // worker joining later need not wait a timeout to see that they are gone.
    for (const [id, s] of this.#seen) {
      if (this.options.clock.now() - s.at < this.options.timeoutMs) continue;
      this.#seen.delete(id);
      this.options.log?.("member-gone", { member: id, silentMs: this.options.clock.now() - s.at });
      void this.kv.delete(memberKey(id), { previousSeq: s.revision }).catch(() => undefined);
    }
  }

  async #follow(): Promise<void> {
    try {
      for await (const entry of this.watch) {
        const id = entry.key.slice("members.".length);
        if (id === this.self.id) continue;
        if (entry.operation !== "PUT") {
          if (this.#seen.delete(id)) this.options.onChange();
          continue;
        }
        const heartbeat = JSON.parse(decoder.decode(entry.value)) as Heartbeat;
        const known = this.#seen.get(id);
        this.#seen.set(id, { heartbeat, at: this.options.clock.now(), revision: entry.revision });
        if (!known) {
          this.options.log?.("member-seen", { member: id, host: heartbeat.host, runtime: heartbeat.runtime });
          this.options.onChange();
        }
      }
    } catch (error) {
      this.options.log?.("membership-watch-failed", { error: String(error) });
    }
  }
}
