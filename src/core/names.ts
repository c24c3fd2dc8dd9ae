/**
 * The names of what Eddy keeps on NATS: buckets, streams and subjects, derived from pipeline,
 * step and table ids (which never come from a step's position). One place, so that every writer
 * and reader agrees.
 *
 * @example
 * tableBucket("revenue_by_store"); // "eddy-table-revenue_by_store"
 * kvSubject(stateBucket("shop"), "revenue.0.manifest"); // "$KV.eddy-state-shop.revenue.0.manifest"
 */
import { StateStoreError } from "./errors.ts";

const tablePrefix = "eddy-table-";

/** The KV bucket holding result table `name`. */
export function tableBucket(name: string): string {
  return `${tablePrefix}${name}`;
}

/** The table a bucket holds, if it is a table bucket. */
export function tableOfBucket(bucket: string): string | undefined {
  return bucket.startsWith(tablePrefix) ? bucket.slice(tablePrefix.length) : undefined;
}

/** The KV bucket holding a pipeline's operator state. */
export function stateBucket(pipelineId: string): string {
  return `eddy-state-${pipelineId}`;
}

const groupPrefix = "eddy-group-";

/** The KV bucket of a pipeline's group: its members' heartbeats and its partitions' leases. */
export function groupBucket(pipelineId: string): string {
  return `${groupPrefix}${pipelineId}`;
}

/** The pipeline whose group a bucket holds, if it is a group bucket. */
export function pipelineOfGroupBucket(bucket: string): string | undefined {
  return bucket.startsWith(groupPrefix) ? bucket.slice(groupPrefix.length) : undefined;
}

/**
 * The internal stream behind the edge out of `step`, and the subjects it holds: one per partition
 * of the steps that read it and partition of `step` that writes (`edgeSubject`), so that a worker
 * reads only its partitions' share and a writer can read back what it sent.
 */
export function edgeStream(pipelineId: string, step: string): { stream: string; subject: string } {
  return { stream: `eddy-edge-${pipelineId}-${step}`, subject: `eddy.edge.${pipelineId}.${step}.>` };
}

/** The subject of the edge out of `step` from its partition `writer` to partition `reader` of the steps that read it. */
export function edgeSubject(pipelineId: string, step: string, reader: number, writer: number): string {
  return `eddy.edge.${pipelineId}.${step}.${reader}.${writer}`;
}

/**
 * The subject of partition `partition` of a source partitioned by subject (token `token` of its
 * `subject` is the partition; `*`: every partition's).
 */
export function sourcePartitionSubject(subject: string, token: number, partition: number | "*"): string {
  const tokens = subject.split(".");
  tokens[token] = String(partition);
  return tokens.join(".");
}

/** What partition `reader` of the steps reading the edge out of `step` reads. */
export function edgeReaderFilter(pipelineId: string, step: string, reader: number): string {
  return `eddy.edge.${pipelineId}.${step}.${reader}.*`;
}

/** What partition `writer` of `step` sent on its edge (a recovery reads it back). */
export function edgeWriterFilter(pipelineId: string, step: string, writer: number): string {
  return `eddy.edge.${pipelineId}.${step}.*.${writer}`;
}

/** Events a pipeline set aside: dead letters, late events. */
export type SideOutput = "dlq" | "late";

export function sideStream(kind: SideOutput, pipelineId: string): string {
  return `eddy-${kind}-${pipelineId}`;
}

export function sideSubject(kind: SideOutput, pipelineId: string, step: string): string {
  return `eddy.${kind}.${pipelineId}.${step}`;
}

/** The subjects of a pipeline's side stream of `kind`. */
export function sideSubjects(kind: SideOutput, pipelineId: string): string {
  return `eddy.${kind}.${pipelineId}.>`;
}

/** The subject a KV put to `bucket`/`key` is published on; `kv.get(key)` reads what lands there. */
export function kvSubject(bucket: string, key: string): string {
  if (!/^[-\w]+$/.test(bucket)) {
    throw new StateStoreError({ key, message: `invalid KV bucket name "${bucket}": use letters, digits, - and _` });
  }
  if (!/^[-/=.\w]+$/.test(key) || key.startsWith(".") || key.endsWith(".")) {
    throw new StateStoreError({
      key,
      message: `invalid KV key "${key}": use letters, digits and - / _ = . (not at either end)`,
    });
  }
  return `$KV.${bucket}.${key}`;
}
