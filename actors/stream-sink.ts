/**
 * The stateless sink operator: every record goes to the step's stream sink as it is. It keeps no
 * keyed state; its actor still checkpoints its input position, so a restart resumes where the
 * last acknowledged output was, and Nats-Msg-Ids drop what a replay sends twice.
 *
 * @example
 * orders.filter("big", (o) => o.qty > 3).toStream("big-orders", { stream: "big-orders" });
 */
import type { Operator } from "./operator.ts";

export const streamSinkOperator: Operator<never, unknown> = {
  apply(ctx, rec) {
    ctx.emit(rec.value);
  },
};
