/**
 * What an operator actor sets aside, never lost and never retried in a loop: dead letters (a
 * record the operator threw on, a timer that threw) and late events, each to its side stream
 * (src/log/side-outputs.ts) with the reason, and counted. The counts are checkpointed, so they
 * survive restarts.
 *
 * @example
 * const aside = new SetAside(publisher, { pipelineId: "shop", step: "revenue", sourceStreams: { orders: "orders" } });
 * aside.deadLetter("orders", rec, new Error("boom"));
 * aside.deadLetters; // 1
 */
import { publishSideOutput } from "../src/log/side-outputs.ts";
import type { Publisher } from "../src/log/publisher.ts";
import type { Rec } from "./operator.ts";

const encoder = new TextEncoder();

export interface SetAsideOptions {
  readonly pipelineId: string;
  readonly step: string;
  /** Source id to its stream name, for the side output's headers. */
  readonly sourceStreams?: Readonly<Record<string, string>> | undefined;
}

export class SetAside {
  deadLetters = 0;
  lateEvents = 0;

  constructor(readonly publisher: Publisher, readonly options: SetAsideOptions) {}

  /** The operator threw on `rec` of `source`. */
  deadLetter(source: string, rec: Rec, error: unknown): void {
    this.deadLetters++;
    const reason = `step "${this.options.step}" threw on key ${JSON.stringify(rec.key)}: ${
      error instanceof Error ? error.message : String(error)
    }`;
    this.#publish("dlq", source, rec.seq, reason, rec.value);
  }

  /** What the operator did outside of a record (a timer) threw: `value` with the reason, under the timer's id `cause`. */
  failed(cause: string, value: unknown, reason: string): void {
    this.deadLetters++;
    const { pipelineId, step } = this.options;
    publishSideOutput(this.publisher, pipelineId, "dlq", {
      step,
      source: cause,
      sourceStream: "",
      sourceSeq: 0,
      reason: `step "${step}": ${reason}`,
      data: encoder.encode(JSON.stringify(value) ?? "null"),
    });
  }

  /** `rec` of `source` came too late. */
  late(source: string, rec: Rec, reason: string): void {
    this.lateEvents++;
    this.#publish("late", source, rec.seq, reason, rec.value);
  }

  #publish(kind: "dlq" | "late", source: string, seq: number, reason: string, value: unknown): void {
    const { pipelineId, step, sourceStreams } = this.options;
    let data: Uint8Array;
    try {
      data = encoder.encode(JSON.stringify(value));
    } catch {
      data = encoder.encode(String(value));
    }
    publishSideOutput(this.publisher, pipelineId, kind, {
      step,
      source,
      sourceStream: sourceStreams?.[source] ?? source,
      sourceSeq: seq,
      reason,
      data,
    });
  }
}
