/**
 * The edge out of a keyed step (Kafka Streams' repartition topic): every output goes to an
 * internal stream in an envelope with the writing partition and its watermark, under a
 * deterministic Nats-Msg-Id, so that the steps reading it (their own actors, maybe in other
 * processes) can tell the partitions' watermarks apart and a replay's outputs are dropped as
 * duplicates. The watermark also travels alone, at most every `edgeWatermarkMs` while batches
 * flow and always before a checkpoint, after every output sent before it (a window's row is sent
 * before the watermark that closed it).
 *
 * @example
 * const edge = new EdgeOutput(publisher, clock, { pipelineId: "shop", partition: 3, edge: { id: "per-store", subject: "eddy.edge.shop.per-store" } });
 * edge.send("orders/42", '{"store":"s1","n":3}', 1_700_000_000_000, undefined);
 * edge.sendWatermark(1_700_000_000_000, false);
 */
import type { Clock } from "../src/core/clock.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { Rec } from "./operator.ts";

/**
 * What a step sends on its edge: its partition, its watermark (null: none yet), and for an
 * output, its event time (null: none), the output `v` and, for an updated row, the version `b` it
 * replaces. Without `v` and `b` it only moves the partition's watermark.
 */
export interface EdgeEnvelope {
  p: number;
  w: number | null;
  t?: number | null;
  v?: unknown;
  b?: unknown;
}

/** An edge: its step id (the msg-id prefix) and the subject of its stream. */
export interface EdgePlan {
  readonly id: string;
  readonly subject: string;
}

export interface EdgeOutputOptions {
  readonly pipelineId: string;
  readonly partition: number;
  /** The edge outputs go to, if later steps read them. */
  readonly edge?: EdgePlan | undefined;
  /** The edge late events go to, if later steps read them (a window's `lateEvents`). */
  readonly lateEdge?: EdgePlan | undefined;
}

/** How often a busy edge carries watermark news. */
export const edgeWatermarkMs = 20;

const encoder = new TextEncoder();

export class EdgeOutput {
  /** The watermark last sent, and when. */
  #watermark = Number.NEGATIVE_INFINITY;
  #sentAt = Number.NEGATIVE_INFINITY;
  readonly #subjects: string[];

  constructor(readonly publisher: Publisher, readonly clock: Clock, readonly options: EdgeOutputOptions) {
    this.#subjects = [options.edge, options.lateEdge].flatMap((e) => (e ? [e.subject] : []));
  }

  /** Whether outputs go to an edge at all. */
  get active(): boolean {
    return this.options.edge !== undefined;
  }

  /** An output (its JSON; undefined: the row is gone) and the version it replaces, under output id `id`. */
  send(id: string, json: string | undefined, time: number, beforeJson: string | undefined): void {
    const { edge, partition, pipelineId } = this.options;
    if (!edge) return;
    // An EdgeEnvelope, written out around the output's JSON (made once for every sink).
    let envelope = `{"p":${partition},"w":${finite(this.#watermark)},"t":${finite(time)}`;
    if (json !== undefined) envelope += `,"v":${json}`;
    if (beforeJson !== undefined) envelope += `,"b":${beforeJson}`;
    this.publisher.publish(edge.subject, encoder.encode(envelope + "}"), { msgId: `${pipelineId}/${edge.id}/${id}` });
  }

  /** A late event of `source`, to the steps that read the late events (if any). */
  sendLate(source: string, rec: Rec): void {
    const { lateEdge, partition, pipelineId } = this.options;
    if (!lateEdge) return;
    const envelope: EdgeEnvelope = { p: partition, w: finite(this.#watermark), t: finite(rec.time), v: rec.value };
    this.publisher.publish(lateEdge.subject, encoder.encode(JSON.stringify(envelope)), {
      msgId: `${pipelineId}/${lateEdge.id}/${source}/${rec.seq}`,
    });
  }

  /** Tell the readers how far this partition's watermark got: at most every `edgeWatermarkMs`, unless forced. */
  sendWatermark(watermark: number, force: boolean): void {
    if (this.#subjects.length === 0 || watermark <= this.#watermark) return;
    const now = this.clock.now();
    if (!force && now - this.#sentAt < edgeWatermarkMs) return;
    this.#watermark = watermark;
    this.#sentAt = now;
    const envelope = encoder.encode(JSON.stringify({ p: this.options.partition, w: finite(watermark) } satisfies EdgeEnvelope));
    for (const subject of this.#subjects) this.publisher.publish(subject, envelope);
  }
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);
