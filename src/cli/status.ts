/**
 * `eddy status <pipeline>`: a pipeline's workers and partitions, read from NATS, whether or not a
 * worker is running. The workers are its group's members (src/serve/group-watch.ts): id, host,
 * runtime, pid, heartbeat age, live or gone, partitions held and the share the balance gives each.
 * Every partition (each one with a committed manifest or a lease) shows its owner, what it last
 * committed (checkpoint number and age, input positions, lag behind its streams, keys, dead
 * letters, late events) and its move, if one is in progress: `releasing` (its owner is live but
 * the balance gives it to another member) or `taking` (its lease is free, or its owner is gone, and
 * the balance names who takes it). A pipeline run by `Worker.start` alone has no group: then only
 * the partitions.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../core/errors.ts";
import { edgeReaderFilter, edgeStream, sourcePartitionSubject } from "../core/names.ts";
import { lastSequence } from "../log/streams.ts";
import type { Platform } from "../platform/platform.ts";
import { GroupWatch } from "../serve/group-watch.ts";
import type { PartitionOwnership } from "../serve/ownership.ts";
import { readCommitted, readSources } from "../state/checkpoint.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { natsFlags, withNats } from "./target.ts";

export const statusCommand: CommandSpec = {
  name: "status",
  summary:
    "Show a pipeline's workers (heartbeat age, partitions) and every partition: owner, checkpoint and its age, lag, keys, moves in progress.",
  positionals: [{ name: "pipeline", help: "the pipeline id, e.g. coffee-shop", required: true }],
  flags: {
    ...natsFlags,
    json: { type: "boolean", help: "print one JSON object per worker, then one per partition, instead of tables" },
    stream: {
      type: "string",
      help: "the source streams, for the lag: source=stream pairs, comma-separated, or one stream for every source " +
        "(default: a stream named after the source, its - as _: order-status reads order_status)",
    },
  },
  examples: ["eddy status coffee-shop", "eddy status coffee-shop --json --stream orders=orders,order-status=order_status"],
};

/** How long ago, for people: "0.4 s", "12 s", "3 min", "2 h". */
function age(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

/** Which stream each source reads, from `--stream`: `a=x,b=y`, or one name for every source. */
function streamsFlag(flag: string | undefined): { named: Map<string, string>; every?: string } {
  const named = new Map<string, string>();
  let every: string | undefined;
  for (const part of (flag ?? "").split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq < 0) every = part;
    else named.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return every === undefined ? { named } : { named, every };
}

/** What a move means, for people: "releasing w1 -> w2", "taking (free) -> w2", "taking w1 (gone) -> w2". */
function moveText(p: PartitionOwnership): string {
  if (p.move === null) return "-";
  const from = p.owner === null ? "(free)" : p.move === "taking" ? `${p.owner} (gone)` : p.owner;
  return `${p.move} ${from} -> ${p.target}`;
}

export async function status(platform: Platform, { flags, positionals }: Parsed): Promise<number> {
  const pipelineId = positionals[0]!;
  return withNats(platform, flags, async (nc) => {
    const committed = await readCommitted(nc, pipelineId);
    const watch = await GroupWatch.open(nc, pipelineId);
    const group = watch?.answer(null, committed); // partitions with a lease, and those with a manifest
    watch?.close();
    if (committed.length === 0 && !group) {
      throw new ConfigError({
        message: `pipeline "${pipelineId}" has committed no checkpoint on this server`,
        hint: "check the pipeline id (it names the KV bucket eddy-state-<id>), or start it with `eddy run`",
      });
    }
    const jsm = await jetstreamManager(nc);
    const lastSeqs = new Map<string, number | undefined>();
    const lastSeq = async (name: string) => {
      if (!lastSeqs.has(name)) lastSeqs.set(name, (await jsm.streams.info(name).catch(() => undefined))?.state.last_seq);
      return lastSeqs.get(name);
    };
    const streams = streamsFlag(flags.stream as string | undefined);
    const sources = (await readSources(nc, pipelineId)) ?? {};
    /**
     * The last sequence of what partition `partition` reads of a source: its subjects of an
     * edge's internal stream, its subject of a source partitioned by subject, or the user's stream
     * (as the workers recorded it; else named by `--stream` or after the source).
     */
    const endOf = async (source: string, partition: number): Promise<number | undefined> => {
      const named = streams.named.get(source);
      if (named !== undefined) return lastSeq(named);
      const edge = edgeStream(pipelineId, source).stream;
      if ((await lastSeq(edge)) !== undefined) {
        return lastSequence(nc, edge, edgeReaderFilter(pipelineId, source, partition)).catch(() => undefined);
      }
      if (streams.every !== undefined) return lastSeq(streams.every);
      const described = sources[source];
      if (described?.subject !== undefined && described.partitionToken !== undefined) {
        const subject = sourcePartitionSubject(described.subject, described.partitionToken, partition);
        return lastSequence(nc, described.stream, subject).catch(() => undefined);
      }
      if (described) return lastSeq(described.stream);
      return (await lastSeq(source)) ?? (await lastSeq(source.replace(/-/g, "_")));
    };
    const now = Date.now();
    const manifests = new Map(committed.map((c) => [`${c.step}.${c.partition}`, c.manifest]));
    const partitions: readonly PartitionOwnership[] = group?.partitions ?? committed.map((c) => ({
      step: c.step,
      partition: c.partition,
      owner: null,
      target: null,
      move: null,
      changedAgoMs: null,
      previousOwner: null,
    }));
    const rows = [];
    for (const p of partitions) {
      const manifest = manifests.get(`${p.step}.${p.partition}`);
      let lag: number | undefined;
      let unknown = false;
      for (const [source, at] of Object.entries(manifest?.positions ?? {})) {
        const end = await endOf(source, p.partition);
        if (end === undefined) unknown = true;
        else lag = Math.max(lag ?? 0, end - at);
      }
      if (unknown) lag = undefined;
      else if (manifest && Object.keys(manifest.positions).length === 0 && streams.every !== undefined) {
        lag = await lastSeq(streams.every);
      }
      rows.push({
        step: p.step,
        partition: p.partition,
        checkpoint: manifest?.checkpoint ?? null,
        committedAt: manifest ? new Date(manifest.committedAt).toISOString() : null,
        checkpointAgeMs: manifest ? Math.max(0, now - manifest.committedAt) : null,
        positions: manifest?.positions ?? {},
        ...(lag === undefined ? {} : { lag: Math.max(0, lag) }),
        watermarks: manifest?.watermarks ?? {},
        keys: manifest?.keys ?? 0,
        deadLetters: manifest?.counters.deadLetters ?? 0,
        lateEvents: manifest?.counters.lateEvents ?? 0,
        generation: manifest?.generation ?? null,
        owner: p.owner,
        ...(group ? { target: p.target, move: p.move, leaseChangedAgoMs: p.changedAgoMs } : {}),
        moveText: moveText(p),
      });
    }
    const workers = (group?.members ?? []).map((m) => ({
      worker: m.id,
      host: m.host,
      runtime: m.runtime,
      pid: m.pid,
      heartbeatAgeMs: m.ageMs,
      live: m.live,
      timeoutMs: m.timeoutMs,
      partitions: m.partitions,
      share: m.share,
    }));
    if (flags.json) {
      for (const w of workers) platform.out(`${JSON.stringify(w)}\n`);
      for (const { moveText: _, ...row } of rows) platform.out(`${JSON.stringify(row)}\n`);
      return 0;
    }
    if (group) {
      platform.out(`workers: ${workers.filter((w) => w.live).length} live${group.members.length ? "" : " (none)"}\n`);
      if (workers.length > 0) {
        printTable(
          platform,
          ["worker", "host", "runtime", "pid", "heartbeat", "state", "partitions", "share"],
          workers.map((w) => [
            w.worker,
            w.host,
            w.runtime,
            String(w.pid),
            `${age(w.heartbeatAgeMs)} ago`,
            w.live ? "live" : "gone",
            String(w.partitions),
            String(w.share),
          ]),
        );
      }
      platform.out("\n");
    }
    const anyLag = rows.some((r) => r.lag !== undefined);
    const header = [
      "step",
      "part",
      "ckpt",
      "ckpt age",
      "position",
      ...(anyLag ? ["lag"] : []),
      "keys",
      "dlq",
      "late",
      ...(group ? ["owner", "move"] : []),
    ];
    const lines = rows.map((r) => [
      r.step,
      String(r.partition),
      r.checkpoint === null ? "-" : String(r.checkpoint),
      r.checkpointAgeMs === null ? "-" : age(r.checkpointAgeMs),
      Object.entries(r.positions).map(([s, p]) => `${s}:${p}`).join(" ") || "-",
      ...(anyLag ? [r.lag === undefined ? "-" : String(r.lag)] : []),
      String(r.keys),
      String(r.deadLetters),
      String(r.lateEvents),
      ...(group ? [r.owner ?? "-", r.moveText] : []),
    ]);
    printTable(platform, header, lines);
    if (group) {
      const moving = rows.filter((r) => r.moveText !== "-");
      platform.out(`\nmoves in progress: ${moving.length === 0 ? "none" : moving.length}\n`);
      for (const r of moving) platform.out(`  ${r.step}.${r.partition}  ${r.moveText}\n`);
    }
    return 0;
  });
}

function printTable(platform: Platform, header: readonly string[], lines: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const line of [header, ...lines]) platform.out(`${line.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
}
