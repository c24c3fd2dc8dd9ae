/**
 * Dead letters: events a pipeline could not process (not JSON, not matching the source's schema,
 * or a user function threw) go to the pipeline's dead-letter stream with the reason, never lost
 * and never retried in a loop. Each message carries the original bytes (or the event as JSON, for
 * a failure after decoding) and headers naming the step, source, source sequence and reason. Its
 * Nats-Msg-Id is deterministic, so a replay after a crash does not write it twice.
 *
 * @example
 * // eddy tail: read them back
 * const letters = await readDeadLetters(nc, "coffee-shop");
 */
import { type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Publisher } from "./publisher.ts";

export function deadLetterStream(pipelineId: string): string {
  return `eddy-dlq-${pipelineId}`;
}

export function deadLetterSubject(pipelineId: string, step: string): string {
  return `eddy.dlq.${pipelineId}.${step}`;
}

export async function ensureDeadLetterStream(jsm: JetStreamManager, pipelineId: string): Promise<void> {
  const name = deadLetterStream(pipelineId);
  const config = { name, subjects: [`eddy.dlq.${pipelineId}.>`], storage: "file" as const, duplicate_window: 10 * 60 * 1e9 };
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams.add(config);
  }
}

export interface DeadLetter {
  readonly step: string;
  readonly source: string;
  readonly sourceStream: string;
  readonly sourceSeq: number;
  readonly reason: string;
  readonly data: Uint8Array;
}

/** Publish a dead letter (acknowledged with the publisher's next flush). */
export function publishDeadLetter(publisher: Publisher, pipelineId: string, letter: DeadLetter): void {
  publisher.publish(deadLetterSubject(pipelineId, letter.step), letter.data, {
    msgId: `${pipelineId}/dlq/${letter.step}/${letter.source}/${letter.sourceSeq}`,
    headers: {
      "Eddy-Step": letter.step,
      "Eddy-Source": letter.source,
      "Eddy-Source-Stream": letter.sourceStream,
      "Eddy-Source-Seq": String(letter.sourceSeq),
      "Eddy-Reason": letter.reason.replace(/[\r\n]+/g, " ").slice(0, 1000),
    },
  });
}

/** Read every dead letter of a pipeline (for tests and `eddy tail`). */
export async function readDeadLetters(nc: NatsConnection, pipelineId: string): Promise<(DeadLetter & { seq: number })[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(deadLetterStream(pipelineId));
  const info = await consumer.info(true);
  const total = info.num_pending;
  const out: (DeadLetter & { seq: number })[] = [];
  if (total === 0) return out;
  const messages = await consumer.consume();
  for await (const m of messages) {
    const h = m.headers;
    out.push({
      seq: m.seq,
      step: h?.get("Eddy-Step") ?? "",
      source: h?.get("Eddy-Source") ?? "",
      sourceStream: h?.get("Eddy-Source-Stream") ?? "",
      sourceSeq: Number(h?.get("Eddy-Source-Seq")),
      reason: h?.get("Eddy-Reason") ?? "",
      data: m.data,
    });
    if (m.info.pending === 0) break;
  }
  await messages.close();
  return out;
}
