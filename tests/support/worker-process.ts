/**
 * A pipeline worker as a real child process (`eddy run`), for crash and restart tests: start
 * it, SIGKILL or SIGTERM it, and read its progress from the committed manifests in KV.
 *
 * @example
 * const child = startWorkerProcess(url, "examples/coffee-shop/pipeline.ts", "coffeeShop");
 * await waitFor(async () => (await committedPosition(nc, "coffee-shop", "orders", coffeeShopActors)) >= 1000);
 * child.kill("SIGKILL");
 * await child.exited;
 */
import { spawn } from "node:child_process";
import { expect } from "vitest";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { coffeeShop } from "../../examples/coffee-shop/pipeline.ts";
import type { Pipeline } from "../../src/pipeline/pipeline.ts";
import { compile } from "../../src/runtime/plan.ts";
import { readCommitted } from "../../src/state/checkpoint.ts";
import { edgeReaderFilter, edgeStream } from "../../src/core/names.ts";
import { lastSequence } from "../../src/log/streams.ts";

export interface WorkerProcess {
  readonly pid: number;
  kill(signal: NodeJS.Signals): void;
  /** Exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  output(): string;
}

export function startWorkerProcess(url: string, module: string, exportName: string, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, ["bin/eddy.js", "run", module, "--export", exportName, "--nats", url, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NATS_URL: "" },
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  expect(child.pid, "eddy run started as a child process").toBeTypeOf("number");
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    pid: child.pid!,
    kill: (signal) => void child.kill(signal),
    exited,
    output: () => output,
  };
}

/** How many operator actors (one per step and partition) run a pipeline's steps that `reading` accepts. */
export function actorCount(p: Pipeline, reading: (sources: readonly string[]) => boolean = () => true): number {
  return compile(p).actors.filter((a) => reading(a.sources)).reduce((n, a) => n + a.partitions, 0);
}

/** The coffee-shop pipeline's operator actors. */
export const coffeeShopActors = actorCount(coffeeShop());

/** Of those, the actors that read the `orders` stream (the late-orders count reads an edge). */
export const coffeeShopOrderActors = actorCount(coffeeShop(), (sources) => sources.includes("orders"));

/**
 * Whether all `actors` operator actors of a pipeline committed everything there is to read: the
 * whole of the `sources` streams (source id to stream), and of each partition's subjects of the
 * internal edge streams.
 */
export async function caughtUp(
  nc: NatsConnection,
  pipelineId: string,
  sources: Readonly<Record<string, string>>,
  actors: number,
): Promise<boolean> {
  const committed = await readCommitted(nc, pipelineId);
  expect(committed.length, `at most ${actors} actors of ${pipelineId} (a stale actor count in the test?)`).toBeLessThanOrEqual(
    actors,
  );
  if (committed.length < actors) return false;
  const jsm = await jetstreamManager(nc);
  const last = new Map<string, number>();
  for (const { manifest, partition } of committed) {
    for (const [source, position] of Object.entries(manifest.positions)) {
      // A source's whole stream; an edge's subjects of this partition (what it reads of the edge).
      const key = source in sources ? source : `${source}.${partition}`;
      if (!last.has(key)) {
        last.set(
          key,
          source in sources
            ? (await jsm.streams.info(sources[source]!)).state.last_seq
            : await lastSequence(nc, edgeStream(pipelineId, source).stream, edgeReaderFilter(pipelineId, source, partition)),
        );
      }
      if (position < last.get(key)!) return false;
    }
  }
  return true;
}

/**
 * The lowest committed position of `source` over the `actors` operator actors that read it (0
 * until every one of them has committed a position in it).
 */
export async function committedPosition(nc: NatsConnection, pipelineId: string, source: string, actors: number): Promise<number> {
  const committed = (await readCommitted(nc, pipelineId)).filter((c) => source in c.manifest.positions);
  if (committed.length < actors) return 0;
  return Math.min(...committed.map((c) => c.manifest.positions[source]!));
}
