/**
 * Eddy's errors. NATS client errors are translated into these where they enter (src/log,
 * src/state); nothing from the client leaks into the core. Every error says what failed and, where
 * a person can act, how to fix it.
 */
import { Data } from "effect";

/** The NATS server cannot be reached, or refused us. */
export class ConnectionError extends Data.TaggedError("ConnectionError")<{
  readonly url: string;
  readonly message: string;
  readonly hint: string;
  readonly cause?: unknown;
}> {}

/** A stream the pipeline reads does not exist, or is not what the pipeline needs. */
export class StreamError extends Data.TaggedError("StreamError")<{
  readonly stream: string;
  readonly message: string;
  readonly hint: string;
  readonly cause?: unknown;
}> {}

/** A publish was not acknowledged by JetStream (rejected, no stream, or timed out after retries). */
export class PublishError extends Data.TaggedError("PublishError")<{
  readonly subject: string;
  readonly message: string;
  readonly cause?: unknown;
}> {}

/** Reading or writing operator state in the KV store failed. */
export class StateStoreError extends Data.TaggedError("StateStoreError")<{
  readonly key: string;
  readonly message: string;
  readonly cause?: unknown;
}> {}

/** Another writer committed this partition's manifest: we lost ownership and must not commit. */
export class FencedError extends Data.TaggedError("FencedError")<{
  readonly key: string;
  readonly message: string;
}> {}

/** A configuration value, CLI flag or pipeline definition is wrong. */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly message: string;
  readonly hint: string;
}> {}
