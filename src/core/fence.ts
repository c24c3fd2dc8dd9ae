/**
 * A fence: what a worker asks before it writes for a partition. A worker in a group may write
 * only while its membership is fresh (its leases cannot have moved) and may take over a
 * partition's state only while it holds that partition's lease (src/cluster/group.ts). A worker
 * alone, started through the library, is never fenced.
 *
 * @example
 * fence.check("eddy.edge.shop.per-store"); // throws FencedError once the worker's leases may have moved
 * await fence.holds("revenue", 3); // throws FencedError unless this worker holds revenue.3's lease
 */
export interface Fence {
  /** Throws FencedError unless this worker may still write (`what`: the subject or key, for the message). */
  check(what: string): void;
  /** Resolves when this worker holds the lease of `step`/`partition`; rejects with FencedError otherwise. */
  holds(step: string, partition: number): Promise<void>;
}

/** The fence of a worker that runs alone: every write allowed. */
export const unfenced: Fence = {
  check() {},
  holds: () => Promise.resolve(),
};
