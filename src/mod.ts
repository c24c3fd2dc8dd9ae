/**
 * Eddy's public surface, listed by name: what the package `@eddy/eddy` exports (npm: dist/src/mod.js
 * and its .d.ts; JSR and Deno: this file). Everything a user calls or names is here; every type
 * reachable from these signatures is exported too (tests/package.test.ts checks), except the
 * internals it lists there.
 *
 * @example
 * import { connectNats, pipeline, readTable, Worker } from "@eddy/eddy";
 * const p = pipeline("shop");
 * p.source("orders", { stream: "orders", schema: Order }).keyBy("by-store", "store")
 *   .aggregate("revenue", (a) => ({ n: a.count() })).toTable("revenue_by_store");
 * const nc = await connectNats({ url: "nats://127.0.0.1:4222" });
 * const worker = await Worker.start(nc, p);
 * console.log(await readTable(nc, "revenue_by_store"));
 */

// Composing a pipeline.
export { Pipeline, pipeline } from "./pipeline/pipeline.ts";
export type {
  Changelog,
  Dashboard,
  DelayOf,
  EventsOf,
  JoinOptions,
  KeyedStream,
  KeyField,
  Lookup,
  OuterJoin,
  PipelineOptions,
  Processed,
  ProcessOptions,
  ProcessRow,
  SourceOptions,
  Stream,
  StreamSinkOptions,
  Table,
  UpdatingKeyedStream,
  WindowChangelog,
  WindowedStream,
  WindowRow,
  WindowSpec,
} from "./pipeline/pipeline.ts";
export type {
  Aggregate,
  AggregateRow,
  Aggregates,
  AggregateSpec,
  AnyAggregate,
  KeyOf,
  NumberOf,
  NumericField,
} from "./pipeline/aggregate.ts";
export { keyHash, partitionOf, partitionOfKey } from "./core/partition.ts";
export type { Key } from "./core/partition.ts";
export type { EventSchema } from "./core/schema.ts";

// Running it.
export { Worker } from "./runtime/worker.ts";
export type { ActorInspection, ActorStatus, Assignment, WorkerOptions } from "./runtime/worker.ts";
export { Group, readGroup } from "./cluster/group.ts";
export type { GroupOptions, GroupView } from "./cluster/group.ts";
export type { Heartbeat, MemberInfo } from "./cluster/membership.ts";
export type { Fence } from "./core/fence.ts";
export type { CheckpointHistogram, FixedBuckets } from "./core/checkpoint-histogram.ts";
export type { LifecycleState } from "../actors/lifecycle.ts";
export { manualClock, systemClock } from "./core/clock.ts";
export type { Clock, ManualClock } from "./core/clock.ts";
export { ConfigError, ConnectionError, FencedError, PublishError, StateStoreError, StreamError } from "./core/errors.ts";

// The log: connecting, source streams, publishing events, reading what Eddy set aside.
export { connectNats } from "./log/connection.ts";
export type { NatsTarget } from "./log/connection.ts";
export { ensureStream, readStream } from "./log/streams.ts";
export { publishAll } from "./log/publisher.ts";
export type { Outgoing, PublishAllOptions } from "./log/publisher.ts";
export { recordCountHeader, recordsOf } from "./log/record-batch.ts";
export { readDeadLetters, readLateEvents } from "./log/side-outputs.ts";
export type { SetAsideEvent } from "./log/side-outputs.ts";

// Result tables and checkpoints, read from KV.
export { tableBucket } from "./core/names.ts";
export { listTables, readRow, readTable } from "./state/table.ts";
export type { TableMeta } from "./state/table-page.ts";
export { readCommitted } from "./state/checkpoint.ts";
export type { CommittedPartition, Manifest } from "./state/checkpoint.ts";
export type { ChunkRecords } from "./state/keyed-state.ts";

// Serving result tables from memory: the query API.
export { Catalog } from "./serve/catalog.ts";
export type { CatalogOptions } from "./serve/catalog.ts";
export { TableReplica } from "./serve/replica.ts";
export type { PartitionReflects, RangeQuery, RangeResult, ReplicaOptions, RowChange, TableReflects } from "./serve/replica.ts";
export { createQueryApi } from "./serve/api.ts";
export type { QueryApi, QueryApiOptions } from "./serve/api.ts";
export type { RuntimeProbes } from "./platform/platform.ts";
export type { ServedWorker } from "./serve/actors.ts";
// A group seen from outside it: members, who holds and who should hold each partition, moves.
export { Groups } from "./serve/groups.ts";
export { Followed } from "./serve/followed.ts";
export type { FollowedOptions, Follower } from "./serve/followed.ts";
export type { GroupsOptions } from "./serve/groups.ts";
export { GroupWatch } from "./serve/group-watch.ts";
export type { GroupAnswer, GroupWatchOptions } from "./serve/group-watch.ts";
export { ownership } from "./serve/ownership.ts";
export type { LeaseSeen, MemberOwnership, MemberSeen, Move, Ownership, PartitionOwnership } from "./serve/ownership.ts";

// Testing a pipeline: the batch oracle (the same definition over in-memory arrays).
export { evaluate } from "./oracle/batch.ts";
export type { BatchResult, EvaluateOptions } from "./oracle/batch.ts";
