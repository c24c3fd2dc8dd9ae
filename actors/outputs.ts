/**
 * Where an operator actor's outputs go, and under which ids: the step's stream sinks (batched
 * ones: actors/batched-sink.ts), its edge (actors/edge-output.ts) and, for a step whose table rows
 * are its outputs, its table; the JSON is made once for all the streams. Ids are deterministic, named
 * by the output's cause: `<source>/<seq>` (a record), `@<time>/<key>` or `@p<time>/<key>` (a timer),
 * `<left seq>+<right seq>` (a join's pair), then `/<n>` from a cause's second output on.
 * See docs/ARCHITECTURE.md, "Outputs and their ids".
 *
 * @example
 * const outputs = new Outputs(publisher, { pipelineId: "shop", streams: [sink] }, edge, tables);
 * outputs.forRecord("orders", rec);
 * outputs.emit({ store: "s1", n: 3 }, undefined, rec.time); // id "orders/42"
 */
import type { Key } from "../src/core/partition.ts";
import { keyHash } from "../src/core/partition.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { OutputLog } from "../src/log/record-batch.ts";
import type { Manifest } from "../src/state/checkpoint.ts";
import { BatchedSink } from "./batched-sink.ts";
import type { EdgeOutput } from "./edge-output.ts";
import type { EmitOptions, Rec } from "./operator.ts";
import type { TableWriter } from "./table-writer.ts";

/** A stream sink of a step: its step id, stream and subject; batched: records in batches (actors/batched-sink.ts). */
export interface StreamSinkPlan {
  readonly id: string;
  readonly stream: string;
  readonly subject: string;
  readonly batched?: boolean;
}

export interface OutputsOptions {
  readonly pipelineId: string;
  readonly streams: readonly StreamSinkPlan[];
  /** The source whose inputs a batched sink's batches name (a batched sink reads one source). */
  readonly source?: string | undefined;
}

const encoder = new TextEncoder();

/** What caused the outputs being emitted now. */
const RECORD = 0;
const TIMER = 1;
const CLOCK = 2;

export class Outputs<Out> {
  /** Messages sent (a stream sink's, a batch's share, an edge's). */
  count = 0;
  readonly #streams: readonly StreamSinkPlan[];
  readonly batched: readonly BatchedSink[];
  readonly #pipelineId: string;
  // The cause, and how many outputs it had so far.
  #kind = RECORD;
  #source = "";
  #rec: Rec | undefined;
  #key: Key = 0;
  #time = 0;
  #cause: string | undefined;
  #n = 0;

  constructor(
    readonly publisher: Publisher,
    options: OutputsOptions,
    readonly edge: EdgeOutput,
    readonly tables: TableWriter<unknown, Out> | undefined,
  ) {
    const { pipelineId, streams, source } = options;
    this.#pipelineId = pipelineId;
    this.#streams = streams.filter((s) => !s.batched);
    this.batched = streams.flatMap((s) => (s.batched ? [new BatchedSink(publisher, `${pipelineId}/${s.id}/${source}`, s)] : []));
  }

  /** Outputs from here on are caused by `rec` of `source`. */
  forRecord(source: string, rec: Rec): void {
    this.#kind = RECORD;
    this.#source = source;
    this.#rec = rec;
    this.#cause = undefined;
    this.#n = 0;
  }

  /** Outputs from here on are caused by the timer of `key` at `time` (`clock`: a processing-time timer). */
  forTimer(key: Key, time: number, clock: boolean): void {
    const kind = clock ? CLOCK : TIMER;
    // The same timer again (set again while it fired): its outputs go on counting.
    if (this.#kind === kind && this.#key === key && this.#time === time && this.#cause !== undefined) return;
    this.#kind = kind;
    this.#key = key;
    this.#time = time;
    this.#cause = undefined;
    this.#n = 0;
    this.#rec = undefined;
  }

  /** The id of the cause at hand (a dead letter of a timer is named by it). */
  get cause(): string {
    if (this.#cause !== undefined) return this.#cause;
    if (this.#kind === RECORD) {
      const rec = this.#rec!;
      return this.#cause = `${this.#source}/${rec.seq}${rec.retract ? "-" : ""}`;
    }
    return this.#cause = `@${this.#kind === CLOCK ? "p" : ""}${this.#time}/${JSON.stringify(this.#key)}`;
  }

  #nextId(from: EmitOptions<Out>["from"]): string {
    if (from) return `${from[0]}+${from[1] ?? "-"}`;
    const n = this.#n++;
    return n === 0 ? this.cause : `${this.cause}/${n}`;
  }

  /** The key of the cause at hand (for rows kept from outputs). */
  #causeKey(): [Key, number] {
    const rec = this.#rec;
    return rec ? [rec.key, rec.hash] : [this.#key, keyHash(this.#key)];
  }

  /** Send an output (undefined: the row is gone, `before` says which) at event time `time`. */
  emit(output: Out | undefined, before: Out | undefined, time: number, from?: EmitOptions<Out>["from"]): void {
    const streams = this.#streams;
    // The JSON of the streams' messages (an edge sends what its reading chain makes of the output).
    const json = output === undefined || (streams.length === 0 && this.batched.length === 0) ? undefined : JSON.stringify(output);
    const edge = this.edge.active;
    const id = streams.length > 0 || edge ? this.#nextId(from) : "";
    if (json !== undefined && streams.length > 0) {
      const bytes = encoder.encode(json);
      for (const sink of streams) {
        this.publisher.publish(sink.subject, bytes, { msgId: `${this.#pipelineId}/${sink.id}/${id}` });
        this.count++;
      }
    }
    if (json !== undefined && this.batched.length > 0) {
      const seq = this.#rec?.seq ?? 0;
      for (const sink of this.batched) sink.add(seq, json);
      this.count += this.batched.length;
    }
    if (edge) {
      this.edge.send(id, output, time, before, this.#rec?.watermark, this.#kind === RECORD ? this.#rec?.seq : undefined);
      this.count++;
    }
    if (output !== undefined && this.tables) {
      const [key, hash] = this.#causeKey();
      this.tables.put(key, hash, output);
    }
  }

  // ---- Batched sinks: a batch per input range ----

  /** A batch of records of `source` begins after `applied`. */
  open(applied: number, source: string): void {
    for (const sink of this.batched) sink.open(applied + 1);
    this.edge.open(applied + 1, source);
  }

  /**
   * After the record at `seq`, and before the one at `next` (if any): close a batch that is full,
   * unless both come from one message (the entries of an edge's batch, `seq + i / maxBatchEntries`,
   * or a retraction and its addition): a range holds whole input messages.
   */
  afterRecord(seq: number, next: number | undefined): void {
    const message = Math.floor(seq);
    if (next !== undefined && Math.floor(next) === message) return;
    for (const sink of this.batched) {
      if (!sink.full) continue;
      sink.close(message);
      sink.open(message + 1);
    }
    this.edge.afterRecord(message);
  }

  /** The batch of records ended at `upTo`. */
  close(upTo: number): void {
    for (const sink of this.batched) sink.close(upTo);
    this.edge.close(upTo);
  }

  /** What reads back at a recovery what it sent after the checkpoint: batched sinks, edges. */
  get #readBacks(): readonly ReadBack[] {
    return [...this.batched, ...this.edge.writers];
  }

  /**
   * Batched sinks and edges read back what they sent after the checkpoint. Returns the read-back
   * starts to record at once when one had none (it is new: it starts at its stream's end, so a
   * crash before the first checkpoint still finds what it sent), else undefined.
   */
  async recover(log: OutputLog | undefined, manifest: Manifest): Promise<Record<string, number> | undefined> {
    const readBacks = this.#readBacks;
    if (readBacks.length === 0) return undefined;
    if (!log) throw new Error("a batched stream sink or an edge needs an output log");
    for (const r of readBacks) await r.recover(log, manifest.outputs?.[r.id]);
    if (readBacks.every((r) => manifest.outputs?.[r.id] !== undefined)) return undefined;
    return Object.fromEntries(readBacks.map((r) => [r.id, r.readFrom]));
  }

  /** A checkpoint's cut: what its manifest records as `outputs`, read once its writes are acknowledged. */
  cut(): (() => Record<string, number>) | undefined {
    const readBacks = this.#readBacks;
    if (readBacks.length === 0) return undefined;
    const cuts = readBacks.map((r) => [r.id, r.cut()] as const);
    return () => Object.fromEntries(cuts.map(([id, at]) => [id, at()]));
  }
}

/** A batched sink or an edge: reads back at a recovery what it sent after the checkpoint. */
interface ReadBack {
  readonly id: string;
  readonly readFrom: number;
  recover(log: OutputLog, from: number | undefined): Promise<void>;
  cut(): () => number;
}
