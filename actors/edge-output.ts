/**
 * The edge out of a keyed step (Kafka Streams' repartition topic, Flink's keyed exchange): every
 * output is taken through the reading steps' stateless chain here, by the writer (map, filter,
 * lookup joins, keyBy: src/runtime/plan.ts), and the records it gives go to the subject of the
 * partition that reads them, in an envelope with the writing partition and its watermark, under a
 * deterministic Nats-Msg-Id. So a worker reads only its own partitions' subjects, the readers can
 * tell the writing partitions' watermarks apart, and a replay's outputs are dropped as
 * duplicates (by the stream inside its duplicate window; by the writer's read-back after it:
 * `EdgeWriter`). The watermark also travels alone to every reading partition, at most every
 * `edgeWatermarkMs` while batches flow and always before a checkpoint, after every output sent
 * before it (a window's row is sent before the watermark that closed it).
 *
 * @example
 * const edge = new EdgeOutput(publisher, clock, { pipelineId: "shop", partition: 3, edge: edgePlan(plan, "per-store", lookup) });
 * edge.send("orders/42", { store: "s1", n: 3 }, 1_700_000_000_000, undefined);
 * edge.sendWatermark(1_700_000_000_000, false);
 */
import type { Clock } from "../src/core/clock.ts";
import type { Key } from "../src/core/partition.ts";
import { edgeSubject, edgeWriterFilter } from "../src/core/names.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { OutputLog } from "../src/log/record-batch.ts";
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

/** An edge: its step id (the msg-id prefix), its stream, the partitions that read it, its chain, and whether its rows are versions of rows. */
export interface EdgePlan {
  readonly id: string;
  readonly stream: string;
  readonly partitions: number;
  readonly route: EdgeRoute;
  readonly updating: boolean;
  /**
   * Outputs carry the watermark of the record that caused them (the edge of a repartitioned
   * source: a pass-through, whose every earlier output is sent), not the last one sent alone.
   */
  readonly forwardsWatermarks?: boolean;
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

/**
 * One edge as one partition writes it: a subject per reading partition, and what it sent after its
 * last checkpoint. A recovery reads back the ids of what this partition sent from the sequence the
 * checkpoint recorded, and a replay sends none of those again: an output is applied once even
 * after the stream's duplicate window has passed (a partition that stayed down for longer).
 */
export class EdgeWriter {
  readonly subjects: readonly string[];
  /** The stream sequence a recovery reads back from (recorded by each checkpoint). */
  readFrom = 0;
  /** The highest stream sequence an envelope of this writer was stored at. */
  #stored = 0;
  /** Ids of envelopes sent after the checkpoint, found by the recovery, not sent again yet. */
  #sentBefore = new Set<string>();
  readonly onStored = (seq: number) => {
    if (seq > this.#stored) this.#stored = seq;
  };

  constructor(readonly plan: EdgePlan, readonly publisher: Publisher, readonly pipelineId: string, readonly partition: number) {
    this.subjects = Array.from({ length: plan.partitions }, (_, q) => edgeSubject(pipelineId, plan.id, q, partition));
  }

  /** The edge's step id: the name of its read-back start in a manifest's `outputs`. */
  get id(): string {
    return this.plan.id;
  }

  /** Whether the envelope with this id was sent before the recovery (then it is not sent again). */
  sentBefore(msgId: string): boolean {
    return this.#sentBefore.size > 0 && this.#sentBefore.delete(msgId);
  }

  /**
   * Read back what this partition sent after the checkpoint (from stream sequence `from`;
   * undefined: it is new, start at the stream's end), once what this process sent is acknowledged.
   */
  async recover(log: OutputLog, from: number | undefined): Promise<void> {
    await this.publisher.flush().catch(() => undefined); // a failure was the failed actor's to report
    this.readFrom = from ?? (await log.end(this.plan.stream, undefined));
    const filter = edgeWriterFilter(this.pipelineId, this.plan.id, this.partition);
    this.#sentBefore = new Set(await log.msgIds(this.plan.stream, filter, this.readFrom));
  }

  /** A checkpoint's cut: the read-back start its manifest records (every envelope after the cut is stored past it). */
  cut(): () => number {
    const stored = this.#stored;
    return () => (this.readFrom = Math.max(this.readFrom, stored + 1));
  }
}

export class EdgeOutput {
  /** The watermark last sent, and when. */
  #watermark = Number.NEGATIVE_INFINITY;
  #sentAt = Number.NEGATIVE_INFINITY;
  /** The edge and the late edge, as this partition writes them. */
  readonly writers: readonly EdgeWriter[];
  readonly #edge: EdgeWriter | undefined;
  readonly #lateEdge: EdgeWriter | undefined;
  /** The records of the output at hand, by reading partition. */
  readonly #records = new Map<number, EdgeRecord[]>();

  constructor(readonly publisher: Publisher, readonly clock: Clock, readonly options: EdgeOutputOptions) {
    const { pipelineId, partition } = options;
    this.#edge = options.edge && new EdgeWriter(options.edge, publisher, pipelineId, partition);
    this.#lateEdge = options.lateEdge && new EdgeWriter(options.lateEdge, publisher, pipelineId, partition);
    this.writers = [this.#edge, this.#lateEdge].flatMap((w) => (w ? [w] : []));
  }

  /** Whether outputs go to an edge at all. */
  get active(): boolean {
    return this.#edge !== undefined;
  }

  /**
   * An output (undefined: the row is gone) and the version it replaces, under output id `id`;
   * `watermark`: that of the record that caused it, if any.
   */
  send(id: string, output: unknown, time: number, before: unknown, watermark?: number): void {
    const edge = this.#edge;
    if (!edge) return;
    const msgId = `${this.options.pipelineId}/${edge.id}/${id}`;
    const w = edge.plan.forwardsWatermarks && watermark !== undefined && watermark > this.#watermark
      ? watermark
      : this.#watermark;
    if (edge.plan.updating) {
      if (output === undefined && before === undefined) return;
      this.#send(edge, { before, after: output }, time, msgId, w);
    } else if (output !== undefined) {
      this.#send(edge, output, time, msgId, w);
    }
  }

  /** A late event of `source`, to the steps that read the late events (if any). */
  sendLate(source: string, rec: Rec): void {
    const lateEdge = this.#lateEdge;
    if (!lateEdge) return;
    this.#send(lateEdge, rec.value, rec.time, `${this.options.pipelineId}/${lateEdge.id}/${source}/${rec.seq}`, this.#watermark);
  }

  /** Route `value` through the edge's chain and send its records, an envelope per reading partition. */
  #send(edge: EdgeWriter, value: unknown, time: number, msgId: string, watermark: number): void {
    const records = this.#records;
    let last: Rec | undefined;
    edge.plan.route(value, (q, rec) => {
      if (rec === last) return;
      last = rec;
      const record: EdgeRecord = rec.retract ? [rec.via, rec.key, rec.value, 1] : [rec.via, rec.key, rec.value];
      const list = records.get(q);
      if (list) list.push(record);
      else records.set(q, [record]);
    }, (reason) => this.options.fail?.(value, reason));
    const { partition } = this.options;
    for (const [q, r] of records) {
      const id = `${msgId}/${q}`;
      if (edge.sentBefore(id)) continue;
      const envelope: EdgeEnvelope = { p: partition, q, w: finite(watermark), t: finite(time), r };
      this.publisher.publish(edge.subjects[q]!, encoder.encode(JSON.stringify(envelope)), {
        msgId: id,
        onStored: edge.onStored,
      });
    }
    records.clear();
  }

  /** Tell every reading partition how far this partition's watermark got: at most every `edgeWatermarkMs`, unless forced. */
  sendWatermark(watermark: number, force: boolean): void {
    if (this.writers.length === 0 || watermark <= this.#watermark) return;
    const now = this.clock.now();
    if (!force && now - this.#sentAt < edgeWatermarkMs) return;
    this.#watermark = watermark;
    this.#sentAt = now;
    const { partition } = this.options;
    const w = finite(watermark);
    for (const writer of this.writers) {
      writer.subjects.forEach((subject, q) => {
        const envelope = encoder.encode(JSON.stringify({ p: partition, q, w } satisfies EdgeEnvelope));
        this.publisher.publish(subject, envelope, { onStored: writer.onStored });
      });
    }
  }
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);
