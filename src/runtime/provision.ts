/**
 * Provisioning: what a pipeline writes to exists before anything runs. Its edge streams (the
 * internal streams between keyed steps), its dead-letter and late-event streams, its sink streams
 * (or the sink's subject added to an existing stream), its result tables (a bucket each, with the
 * meta readers place rows by) and, checked rather than created, its source streams, which belong
 * to the user. Idempotent: every worker of a pipeline provisions at start.
 *
 * @example
 * await provision(nc, compile(coffeeShop()));
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { checkSourceStream } from "../log/reader.ts";
import { ensureSideStreams } from "../log/side-outputs.ts";
import { ensureStream } from "../log/streams.ts";
import { createTable } from "../state/table.ts";
import type { Plan } from "./plan.ts";

/** Create what `plan` writes to, each stream and bucket with `replicas` copies. */
export async function provision(nc: NatsConnection, plan: Plan, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  // Edges are deduplicated like sinks: a replay sends an output again under the same Nats-Msg-Id.
  for (const edge of plan.actors.flatMap((a) => [a.edge, a.lateEdge])) {
    if (!edge) continue;
    await ensureStream(nc, edge.stream, [edge.subject], replicas);
    // An edge stream of an Eddy before partitioned edges held one subject: it holds them all now.
    const info = await jsm.streams.info(edge.stream);
    if (!info.config.subjects?.includes(edge.subject)) await jsm.streams.update(edge.stream, { subjects: [edge.subject] });
  }
  for (const source of plan.sources) if (!source.edge) await checkSourceStream(jsm, source.stream);
  await ensureSideStreams(jsm, plan.pipelineId, replicas);
  for (const { stream, subject } of plan.sinkStreams) {
    const info = await jsm.streams.info(stream).catch(() => undefined);
    if (!info) await ensureStream(nc, stream, [subject], replicas);
    else if (!info.config.subjects?.some((s) => subjectMatches(s, subject))) {
      await jsm.streams.update(stream, { subjects: [...(info.config.subjects ?? []), subject] });
    }
  }
  for (const actor of plan.actors) {
    for (const table of actor.tables) {
      await createTable(nc, table, {
        step: actor.step,
        partitions: actor.partitions,
        ...(actor.windowed ? { windowed: true } : {}),
      }, replicas);
    }
  }
}

/** Whether NATS subject pattern `pattern` (with `*` and `>`) matches `subject`. */
function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
