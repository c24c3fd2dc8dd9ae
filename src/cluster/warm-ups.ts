/**
 * Warm-ups of a group: which member has the state of a partition it is to take over read already
 * (`warm.<step>.<partition>` = `{member}` in the group's bucket). The owner giving a partition
 * away waits for its new owner's announcement (or at most `warmUpMs`) before it lets go, so the
 * partition stands still only for the final checkpoint's delta (src/state/warm-up.ts). An
 * announcement is only a hint: it takes no lease and fences nothing.
 *
 * @example
 * const warmUps = new WarmUps(kv, { onChange });
 * await warmUps.announce({ step: "revenue", partition: 3 }, "w2");
 * warmUps.of({ step: "revenue", partition: 3 }); // "w2" (once the group's watch delivered it)
 * await warmUps.withdraw({ step: "revenue", partition: 3 });
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import { type Assignment, assignmentKey } from "../runtime/assignments.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class WarmUps {
  /** Assignment key to the member that announced it warm. */
  readonly #warm = new Map<string, string>();

  constructor(readonly kv: KV, private readonly options: { readonly onChange: () => void }) {}

  /** The member that said it holds this partition's state warm, if any. */
  of(a: Assignment): string | undefined {
    return this.#warm.get(assignmentKey(a));
  }

  async announce(a: Assignment, member: string): Promise<void> {
    await this.kv.put(`warm.${assignmentKey(a)}`, encoder.encode(JSON.stringify({ member })));
  }

  async withdraw(a: Assignment): Promise<void> {
    await this.kv.delete(`warm.${assignmentKey(a)}`);
  }

  /** An entry under `warm.` from the group's watch. */
  apply(entry: KvWatchEntry): void {
    const key = entry.key.slice("warm.".length);
    const member = entry.operation === "PUT" ? (JSON.parse(decoder.decode(entry.value)) as { member: string }).member : undefined;
    if (this.#warm.get(key) === member) return;
    if (member === undefined) this.#warm.delete(key);
    else this.#warm.set(key, member);
    this.options.onChange();
  }
}
