/**
 * The edge out of a keyed step (Kafka Streams' repartition topic, Flink's keyed exchange): every
 * output is taken through the reading steps' stateless chain here, by the writer (map, filter,
 * lookup joins, keyBy: src/runtime/plan.ts), and the records it gives go to the subject of the
 * partition that reads them, in an envelope with the writing partition and its watermark, under a
 * deterministic Nats-Msg-Id. So a worker reads only its own partitions' subjects, the readers can
 * tell the writing partitions' watermarks apart, and a replay's outputs are dropped as
 * duplicates. The watermark also travels alone to every reading partition, at most every
 * `edgeWatermarkMs` while batches flow and always before a checkpoint, after every output sent
 * before it (a window's row is sent before the watermark that closed it).
 *
 * @example
 * const edge = new EdgeOutput(publisher, clock, { pipelineId: "shop", partition: 3, edge: { id: "per-store", subjects, route, updating: false } });
 * edge.send("orders/42", { store: "s1", n: 3 }, 1_700_000_000_000, undefined);
 * edge.sendWatermark(1_700_000_000_000, false);
 */
import type { Clock } from "../src/core/clock.ts";
import type { Key } from "../src/core/partition.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { Rec } from "./operator.ts";

/** A record on an edge: the step it was keyed by (keyBy, or an unkeyed stream sink), its key, value, and 1 if it retracts. */
export type EdgeRecord = [via: string, key: Key, value: unknown] | [via: string, key: Key, value: unknown, retract: 1];

/**
 * What a step sends on its edge: its partition `p`, the reading partition `q`, its watermark
 * (null: none yet), and for an output, its event time (null: none) and the records it gave for
 * partition `q`. Without records it only moves the writing partition's watermark.
 */
export interface EdgeEnvelope {
  p: number;
  q: number;
  w: number | null;
  t?: number | null;
  r?: EdgeRecord[];
}

/**
 * Takes an output through the reading steps' stateless chain: each record it gives, with the
 * partition that reads it (a keyBy gives the same record once per step behind it); `fail` when a
 * step of the chain threw.
 */
export type EdgeRoute = (value: unknown, take: (partition: number, rec: Rec) => void, fail: (reason: string) => void) => void;

/** An edge: its step id (the msg-id prefix), its subject per reading partition, its chain, and whether its rows are versions of rows. */
export interface EdgePlan {
  readonly id: string;
  readonly subjects: readonly string[];
  readonly route: EdgeRoute;
  readonly updating: boolean;
}

export interface EdgeOutputOptions {
  readonly pipelineId: string;
  readonly partition: number;
  /** The edge outputs go to, if later steps read them. */
  readonly edge?: EdgePlan | undefined;
  /** The edge late events go to, if later steps read them (a window's `lateEvents`). */
  readonly lateEdge?: EdgePlan | undefined;
  /** A step of an edge's chain threw on `value`. */
  readonly fail?: (value: unknown, reason: string) => void;
}

/** How often a busy edge carries watermark news. */
export const edgeWatermarkMs = 20;

const encoder = new TextEncoder();

export class EdgeOutput {
  /** The watermark last sent, and when. */
  #watermark = Number.NEGATIVE_INFINITY;
  #sentAt = Number.NEGATIVE_INFINITY;
  /** Every reading partition's subject, of the edge and of the late edge. */
  readonly #subjects: { readonly subject: string; readonly q: number }[];
  /** The records of the output at hand, by reading partition. */
  readonly #records = new Map<number, EdgeRecord[]>();

  constructor(readonly publisher: Publisher, readonly clock: Clock, readonly options: EdgeOutputOptions) {
    this.#subjects = [options.edge, options.lateEdge].flatMap((e) => e ? e.subjects.map((subject, q) => ({ subject, q })) : []);
  }

  /** Whether outputs go to an edge at all. */
  get active(): boolean {
    return this.options.edge !== undefined;
  }

  /** An output (undefined: the row is gone) and the version it replaces, under output id `id`. */
  send(id: string, output: unknown, time: number, before: unknown): void {
    const { edge, pipelineId } = this.options;
    if (!edge) return;
    if (edge.updating) {
      if (output === undefined && before === undefined) return;
      this.#send(edge, { before, after: output }, time, `${pipelineId}/${edge.id}/${id}`);
    } else if (output !== undefined) {
      this.#send(edge, output, time, `${pipelineId}/${edge.id}/${id}`);
    }
  }

  /** A late event of `source`, to the steps that read the late events (if any). */
  sendLate(source: string, rec: Rec): void {
    const { lateEdge, pipelineId } = this.options;
    if (!lateEdge) return;
    this.#send(lateEdge, rec.value, rec.time, `${pipelineId}/${lateEdge.id}/${source}/${rec.seq}`);
  }

  /** Route `value` through the edge's chain and send its records, an envelope per reading partition. */
  #send(edge: EdgePlan, value: unknown, time: number, msgId: string): void {
    const records = this.#records;
    let last: Rec | undefined;
    edge.route(value, (q, rec) => {
      if (rec === last) return;
      last = rec;
      const record: EdgeRecord = rec.retract ? [rec.via, rec.key, rec.value, 1] : [rec.via, rec.key, rec.value];
      const list = records.get(q);
      if (list) list.push(record);
      else records.set(q, [record]);
    }, (reason) => this.options.fail?.(value, reason));
    const { partition } = this.options;
    for (const [q, r] of records) {
      const envelope: EdgeEnvelope = { p: partition, q, w: finite(this.#watermark), t: finite(time), r };
      this.publisher.publish(edge.subjects[q]!, encoder.encode(JSON.stringify(envelope)), { msgId: `${msgId}/${q}` });
    }
    records.clear();
  }

  /** Tell every reading partition how far this partition's watermark got: at most every `edgeWatermarkMs`, unless forced. */
  sendWatermark(watermark: number, force: boolean): void {
    if (this.#subjects.length === 0 || watermark <= this.#watermark) return;
    const now = this.clock.now();
    if (!force && now - this.#sentAt < edgeWatermarkMs) return;
    this.#watermark = watermark;
    this.#sentAt = now;
    const { partition } = this.options;
    const w = finite(watermark);
    for (const { subject, q } of this.#subjects) {
      this.publisher.publish(subject, encoder.encode(JSON.stringify({ p: partition, q, w } satisfies EdgeEnvelope)));
    }
  }
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);
