/**
 * Side outputs: events a pipeline set aside, never lost and never retried in a loop.
 * - dead letters (`eddy-dlq-<pipeline>`): not JSON, not matching the source's schema, or a user
 *   function threw on them;
 * - late events (`eddy-late-<pipeline>`): events of a window that had already closed (its end
 *   plus the allowed lateness was behind the watermark when they arrived).
 * Each message carries the original bytes (or the event as JSON, after decoding) and headers
 * naming the step, source, source sequence and reason. Its Nats-Msg-Id is deterministic, so a
 * replay after a crash does not write it twice.
 *
 * @example
 * const letters = await readDeadLetters(nc, "coffee-shop");
 * const late = await readLateEvents(nc, "coffee-shop");
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Publisher } from "./publisher.ts";
import { duplicateWindowNs, readStream, waitForLeader } from "./streams.ts";
import { type SideOutput, sideStream, sideSubject, sideSubjects } from "../core/names.ts";

export async function ensureSideStreams(jsm: JetStreamManager, pipelineId: string, replicas = 1): Promise<void> {
  for (const kind of ["dlq", "late"] as const) {
    const name = sideStream(kind, pipelineId);
    try {
      await jsm.streams.info(name);
    } catch {
      await jsm.streams.add({
        name,
        subjects: [sideSubjects(kind, pipelineId)],
        storage: "file",
        duplicate_window: duplicateWindowNs,
        num_replicas: replicas,
      }).catch(async (error) => {
        // Workers starting together create it together ("subjects overlap"): one wins, the others find it there.
        if (!(await jsm.streams.info(name).then(() => true, () => false))) throw error;
      });
    }
    if (replicas > 1) await waitForLeader(jsm, name);
  }
}

/** An event set aside (dead letter or late), as written to and read back from its side stream. */
export interface SetAsideEvent {
  readonly step: string;
  readonly source: string;
  readonly sourceStream: string;
  readonly sourceSeq: number;
  readonly reason: string;
  readonly data: Uint8Array;
}

/** Publish a set-aside event (acknowledged with the publisher's next flush). */
export function publishSideOutput(publisher: Publisher, pipelineId: string, kind: SideOutput, event: SetAsideEvent): void {
  publisher.publish(sideSubject(kind, pipelineId, event.step), event.data, {
    msgId: `${pipelineId}/${kind}/${event.step}/${event.source}/${event.sourceSeq}`,
    headers: {
      "Eddy-Step": event.step,
      "Eddy-Source": event.source,
      "Eddy-Source-Stream": event.sourceStream,
      "Eddy-Source-Seq": String(event.sourceSeq),
      "Eddy-Reason": event.reason.replace(/[\r\n]+/g, " ").slice(0, 1000),
    },
  });
}

/** Read every set-aside event of a kind (for tests and tools). */
export async function readSideOutput(
  nc: NatsConnection,
  pipelineId: string,
  kind: SideOutput,
): Promise<(SetAsideEvent & { seq: number })[]> {
  const out: (SetAsideEvent & { seq: number })[] = [];
  await readStream(nc, sideStream(kind, pipelineId), {}, (m) => {
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
  });
  return out;
}

export const readDeadLetters = (nc: NatsConnection, pipelineId: string) => readSideOutput(nc, pipelineId, "dlq");
export const readLateEvents = (nc: NatsConnection, pipelineId: string) => readSideOutput(nc, pipelineId, "late");
