/**
 * Eddy's public surface, listed by name.
 *
 * @example
 * import { pipeline, Worker, readTable } from "eddy";
 * const p = pipeline("shop");
 * p.source("orders", { stream: "orders", schema: Order }).keyBy("by-store", "store")
 *   .aggregate("revenue", (a) => ({ n: a.count() })).toTable("revenue_by_store");
 * const worker = await Worker.start(nc, p);
 */
export { Pipeline, pipeline } from "./pipeline/pipeline.ts";
export { tableBucket } from "./core/names.ts";
export type {
  Changelog,
  KeyedStream,
  KeyField,
  PipelineOptions,
  Processed,
  ProcessOptions,
  ProcessRow,
  SourceOptions,
  Stream,
  StreamSinkOptions,
  Table,
} from "./pipeline/pipeline.ts";
export type { Aggregate, AggregateRow, Aggregates, AggregateSpec, NumberOf, NumericField } from "./pipeline/aggregate.ts";
export { keyHash, partitionOf } from "./core/partition.ts";
export type { Key } from "./core/partition.ts";
export type { EventSchema } from "./core/schema.ts";
export { Worker } from "./runtime/worker.ts";
export type { ActorStatus, WorkerOptions } from "./runtime/worker.ts";
export { manualClock, systemClock } from "./core/clock.ts";
export type { Clock, ManualClock } from "./core/clock.ts";
export { connectNats } from "./log/connection.ts";
export { readDeadLetters, readLateEvents } from "./log/side-outputs.ts";
export { listTables, readRow, readTable } from "./state/table.ts";
export { readCommitted } from "./state/checkpoint.ts";
export { ConfigError, ConnectionError, FencedError, PublishError, StateStoreError, StreamError } from "./core/errors.ts";
export { Catalog } from "./serve/catalog.ts";
export { TableReplica } from "./serve/replica.ts";
export { createQueryApi } from "./serve/api.ts";
export type { QueryApi, QueryApiOptions } from "./serve/api.ts";
