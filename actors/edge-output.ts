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
 * before it (a window's row is sent before the watermark that closed it). A repartitioned source's
 * edge sends batches: an envelope per reading partition and range of inputs (`EdgeOutput#close`).
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
import type { InputRange, OutputLog } from "../src/log/record-batch.ts";
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
  /** A batch instead of `t` and `r`: the outputs of a range of inputs, each with its own time and watermark. */
  b?: EdgeEntry[];
}

/** One output in a batch: its event time, the watermark before it (null: none) and its records. */
export type EdgeEntry = [t: number | null, w: number | null, r: EdgeRecord[]];

/**
 * A batch holds at most this many entries, so a reader can number them inside its message: entry
 * `i` of the message at stream sequence `seq` is read as input `seq + i / maxBatchEntries`
 * (`entrySeq`), and the outputs it causes downstream have ids of their own.
 */
export const maxBatchEntries = 1024;

/** A batch is closed early once one of its envelopes holds this many bytes (nats-server's max_payload is 1 MiB). */
export const maxBatchBytes = 256 * 1024;

/** The sequence a reader gives entry `i` of the batch stored at stream sequence `seq`. */
export const entrySeq = (seq: number, i: number): number => (i === 0 ? seq : seq + i / maxBatchEntries);

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
   * They go in batches (`EdgeOutput#close`): the outputs of a range of inputs in one envelope per
   * reading partition.
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
  /** Of a batched edge: by reading partition, the input ranges sent after the checkpoint (ascending), found by the recovery. */
  #covered = new Map<number, { ranges: InputRange[]; next: number }>();
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

  /** Of a batched edge: whether the recovery found the records of input `seq` for partition `q` sent (inputs come in order). */
  covered(q: number, seq: number): boolean {
    const covered = this.#covered.get(q);
    if (!covered) return false;
    const { ranges } = covered;
    while (covered.next < ranges.length && ranges[covered.next]!.to < seq) covered.next++;
    const range = ranges[covered.next];
    return range !== undefined && range.from <= seq;
  }

  /**
   * Read back what this partition sent after the checkpoint (from stream sequence `from`;
   * undefined: it is new, start at the stream's end), once what this process sent is acknowledged.
   */
  async recover(log: OutputLog, from: number | undefined): Promise<void> {
    await this.publisher.flush().catch(() => undefined); // a failure was the failed actor's to report
    this.readFrom = from ?? (await log.end(this.plan.stream, undefined));
    const filter = edgeWriterFilter(this.pipelineId, this.plan.id, this.partition);
    const ids = await log.msgIds(this.plan.stream, filter, this.readFrom);
    this.#covered = new Map();
    if (!this.plan.forwardsWatermarks) return void (this.#sentBefore = new Set(ids));
    // `<prefix>/<source>/<from>-<to>/<q>` (a batch), or `<prefix>/<source>/<seq>/<q>` (one input's, as sent before batches).
    const prefix = `${this.pipelineId}/${this.plan.id}/`;
    for (const id of ids) {
      const match = id.startsWith(prefix) ? /\/(\d+)(?:-(\d+))?\/(\d+)$/.exec(id) : null;
      if (!match) continue;
      const q = Number(match[3]);
      const from = Number(match[1]);
      let covered = this.#covered.get(q);
      if (!covered) this.#covered.set(q, covered = { ranges: [], next: 0 });
      covered.ranges.push({ from, to: match[2] === undefined ? from : Number(match[2]) });
    }
    for (const { ranges } of this.#covered.values()) ranges.sort((a, b) => a.from - b.from);
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
  /** A batched edge's batch: where its input range starts, and by reading partition its entries' JSON. */
  #from = 0;
  #source = "";
  readonly #batch = new Map<number, { entries: string[]; bytes: number; w: number | null }>();
  #full = false;

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
   * `watermark`: that of the record that caused it, if any; `seq`: that record's input sequence
   * (a batched edge's batches are named by the inputs they cover).
   */
  send(id: string, output: unknown, time: number, before: unknown, watermark?: number, seq?: number): void {
    const edge = this.#edge;
    if (!edge) return;
    if (edge.plan.forwardsWatermarks && !edge.plan.updating && seq !== undefined) {
      const w = watermark !== undefined && watermark > this.#watermark ? watermark : this.#watermark;
      if (output !== undefined) this.#add(edge, output, time, w, seq);
      return;
    }
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

  /** Route `value` through the edge's chain into `records`, by reading partition. */
  #route(edge: EdgeWriter, value: unknown): Map<number, EdgeRecord[]> {
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
    return records;
  }

  /** Route `value` through the edge's chain and send its records, an envelope per reading partition. */
  #send(edge: EdgeWriter, value: unknown, time: number, msgId: string, watermark: number): void {
    const records = this.#route(edge, value);
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

  /** Add the records of `value`, caused by input `seq`, to the batch: an entry per reading partition, unless the recovery found it sent. */
  #add(edge: EdgeWriter, value: unknown, time: number, watermark: number, seq: number): void {
    const records = this.#route(edge, value);
    const w = finite(watermark);
    for (const [q, r] of records) {
      if (edge.covered(q, seq)) continue;
      const entry = JSON.stringify([finite(time), w, r] satisfies EdgeEntry);
      const batch = this.#batch.get(q);
      if (!batch) this.#batch.set(q, { entries: [entry], bytes: entry.length, w });
      else {
        batch.entries.push(entry);
        batch.bytes += entry.length + 1;
        if (batch.entries.length >= maxBatchEntries || batch.bytes >= maxBatchBytes) this.#full = true;
      }
    }
    records.clear();
  }

  /** A range of inputs of `source` starts at sequence `from` (a batched edge's batch). */
  open(from: number, source: string): void {
    if (this.#batch.size > 0) return;
    this.#from = from;
    this.#source = source;
  }

  /** After the input at `seq`: a batch that is full is closed there. */
  afterRecord(seq: number): void {
    if (!this.#full) return;
    this.close(seq);
    this.open(seq + 1, this.#source);
  }

  /**
   * The range ends at input `to` (included): each reading partition's entries go in one envelope,
   * named by the range, `<pipeline>/<edge>/<source>/<from>-<to>/<q>`. A recovery that finds it
   * sent drops the records of the inputs it covers.
   */
  close(to: number): void {
    this.#full = false;
    const edge = this.#edge;
    if (!edge || this.#batch.size === 0) return;
    const { partition, pipelineId } = this.options;
    const prefix = `${pipelineId}/${edge.id}/${this.#source}/${this.#from}-${to}/`;
    for (const [q, { entries, w }] of this.#batch) {
      const json = `{"p":${partition},"q":${q},"w":${JSON.stringify(w)},"b":[${entries.join(",")}]}`;
      this.publisher.publish(edge.subjects[q]!, encoder.encode(json), { msgId: prefix + q, onStored: edge.onStored });
    }
    this.#batch.clear();
  }

  /**
   * Tell every reading partition how far this partition's watermark got: at most every
   * `edgeWatermarkMs`, unless forced. Between batches of inputs (a batched edge has sent its batch).
   */
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
