/**
 * `eddy status <pipeline>`: what a pipeline's operator actors last committed, read from their
 * manifests in the state bucket: per step and partition, the checkpoint number and time, input
 * positions and lag behind the source stream, watermark, keys held, dead letters and late events.
 * Works whether or not a worker is running.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../core/errors.ts";
import type { Platform } from "../platform/platform.ts";
import { readGroup } from "../cluster/group.ts";
import { readCommitted } from "../state/checkpoint.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { natsFlags, withNats } from "./target.ts";
import { edgeStream } from "../core/names.ts";

export const statusCommand: CommandSpec = {
  name: "status",
  summary: "Show a pipeline's workers, and per partition its owner and what it last committed: checkpoint, positions, lag, keys.",
  positionals: [{ name: "pipeline", help: "the pipeline id, e.g. coffee-shop", required: true }],
  flags: {
    ...natsFlags,
    json: { type: "boolean", help: "print one JSON object per actor instead of a table" },
    stream: { type: "string", help: "the source stream, to show lag (default: the pipeline's, when it is coffee-shop: orders)" },
  },
  examples: ["eddy status coffee-shop", "eddy status coffee-shop --json --stream orders"],
};

export async function status(platform: Platform, { flags, positionals }: Parsed): Promise<number> {
  const pipelineId = positionals[0]!;
  return withNats(platform, flags, async (nc) => {
    const committed = await readCommitted(nc, pipelineId);
    const group = await readGroup(nc, pipelineId);
    if (committed.length === 0) {
      throw new ConfigError({
        message: `pipeline "${pipelineId}" has committed no checkpoint on this server`,
        hint: "check the pipeline id (it names the KV bucket eddy-state-<id>), or start it with `eddy run`",
      });
    }
    const stream = (flags.stream as string | undefined) ?? (pipelineId === "coffee-shop" ? "orders" : undefined);
    const jsm = await jetstreamManager(nc);
    const lastSeq = async (name: string) => (await jsm.streams.info(name).catch(() => undefined))?.state.last_seq;
    const last = stream ? await lastSeq(stream) : undefined;
    // A source that is the edge out of an earlier step is read from its internal stream.
    const edges = new Map<string, number | undefined>();
    for (const { manifest } of committed) {
      for (const source of Object.keys(manifest.positions)) {
        if (!edges.has(source)) edges.set(source, await lastSeq(edgeStream(pipelineId, source).stream));
      }
    }
    const rows = committed.map(({ step, partition, manifest }) => {
      let lag: number | undefined;
      for (const [source, at] of Object.entries(manifest.positions)) {
        const end = edges.get(source) ?? last;
        if (end !== undefined) lag = Math.max(lag ?? 0, end - at);
      }
      if (Object.keys(manifest.positions).length === 0 && last !== undefined) lag = last;
      return {
        step,
        partition,
        checkpoint: manifest.checkpoint,
        committedAt: new Date(manifest.committedAt).toISOString(),
        positions: manifest.positions,
        ...(lag === undefined ? {} : { lag: Math.max(0, lag) }),
        watermarks: manifest.watermarks ?? {},
        keys: manifest.keys,
        deadLetters: manifest.counters.deadLetters ?? 0,
        lateEvents: manifest.counters.lateEvents ?? 0,
        generation: manifest.generation,
        owner: group?.owners[`${step}.${partition}`] ?? null,
      };
    });
    const now = Date.now();
    const workers = (group?.members ?? []).map((m) => ({
      worker: m.id,
      host: m.host,
      runtime: m.runtime,
      pid: m.pid,
      heartbeatAgeMs: Math.max(0, now - m.at),
      partitions: Object.values(group!.owners).filter((o) => o === m.id).length,
    }));
    if (flags.json) {
      for (const w of workers) platform.out(`${JSON.stringify(w)}\n`);
      for (const row of rows) platform.out(`${JSON.stringify(row)}\n`);
      return 0;
    }
    if (workers.length > 0) {
      printTable(
        platform,
        ["worker", "host", "runtime", "pid", "heartbeat age", "partitions"],
        workers.map((w) => [
          w.worker,
          w.host,
          w.runtime,
          String(w.pid),
          `${(w.heartbeatAgeMs / 1000).toFixed(1)} s`,
          String(w.partitions),
        ]),
      );
      platform.out("\n");
    }
    const header = [
      "step",
      "part",
      "ckpt",
      "committed at",
      "position",
      ...(last === undefined ? [] : ["lag"]),
      "keys",
      "dlq",
      "late",
      ...(group ? ["owner"] : []),
    ];
    const lines = rows.map((r) => [
      r.step,
      String(r.partition),
      String(r.checkpoint),
      r.committedAt,
      Object.entries(r.positions).map(([s, p]) => `${s}:${p}`).join(" "),
      ...(r.lag === undefined ? [] : [String(r.lag)]),
      String(r.keys),
      String(r.deadLetters),
      String(r.lateEvents),
      ...(group ? [r.owner ?? "-"] : []),
    ]);
    printTable(platform, header, lines);
    return 0;
  });
}

function printTable(platform: Platform, header: readonly string[], lines: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  for (const line of [header, ...lines]) platform.out(`${line.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
}
