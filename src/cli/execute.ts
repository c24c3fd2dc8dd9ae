/**
 * How a command's work runs: as an Effect (resources acquired and released in scope order:
 * nats-server, connection, worker, HTTP listener), whose failure is thrown as the error itself so
 * that `main` can print what went wrong and how to fix it.
 */
import { Effect } from "effect";

export async function execute<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
  const result = await Effect.runPromise(Effect.either(effect));
  if (result._tag === "Left") throw result.left;
  return result.right;
}
