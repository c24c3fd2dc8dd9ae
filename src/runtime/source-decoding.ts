/**
 * Source decoding: a source message's bytes to the event its schema makes of them, or the reason
 * it goes to the dead-letter stream (not JSON, or the schema's own issues). The schema part,
 * fast path included, is the source's SchemaDecoder (src/core/schema.ts).
 *
 * @example
 * const decode = sourceDecoder(step); // step: a source step of the pipeline
 * decode(new TextEncoder().encode('{"store":"store-1","qty":"2"}'));
 * // Either.left('does not match the schema of source "orders": qty: Expected number, actual "2"')
 */
import { Either } from "effect";
import type { Step } from "../pipeline/pipeline.ts";

const decoder = new TextDecoder();

/** The decoding of source `step`'s messages. */
export function sourceDecoder(step: Extract<Step, { kind: "source" }>): (data: Uint8Array) => Either.Either<unknown, string> {
  const schema = step.schema;
  return (data) => {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(data));
    } catch (error) {
      return Either.left(`not JSON: ${(error as Error).message}`);
    }
    return schema.decode(json);
  };
}
