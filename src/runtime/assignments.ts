/**
 * Assignments: the (step, partition) pairs a worker runs, each an operator actor. A worker runs a
 * set of them that can grow and shrink while it runs (`Worker.assign`, `Worker.release`); one
 * worker holding every partition of every step is the default. Who holds which is decided
 * elsewhere (leases, when many workers share a pipeline); here, an assignment is just a name.
 *
 * @example
 * everyPartition(plan); // [{ step: "revenue", partition: 0 }, { step: "revenue", partition: 1 }, ...]
 * assignmentKey({ step: "revenue", partition: 3 }); // "revenue.3"
 */
import type { Plan } from "./plan.ts";

export interface Assignment {
  readonly step: string;
  readonly partition: number;
}

/** Every partition of every step of a plan. */
export function everyPartition(plan: Pick<Plan, "actors">): Assignment[] {
  return plan.actors.flatMap((a) => Array.from({ length: a.partitions }, (_, partition) => ({ step: a.step, partition })));
}

/** A name for an assignment, unique within a pipeline (step ids hold no dots). */
export function assignmentKey(a: Assignment): string {
  return `${a.step}.${a.partition}`;
}
