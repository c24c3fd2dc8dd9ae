/**
 * `eddy run <module>`: run a pipeline defined in a TypeScript module as a service beside NATS,
 * until SIGINT or SIGTERM, which checkpoint and stop it cleanly. With `--port`, the same process
 * serves the query API, /metrics, /healthz and /readyz (src/serve/api.ts), and at `/` the pipeline's
 * dashboard (`pipeline(id, { dashboard })`), or the overview page when it has none.
 */
import { Effect, Schedule } from "effect";
import { ConfigError } from "../core/errors.ts";
import { commandLogger, logFlags } from "../observe/logger.ts";
import { Pipeline } from "../pipeline/pipeline.ts";
import type { Platform } from "../platform/platform.ts";
import { Group } from "../cluster/group.ts";
import type { WorkerOptions } from "../runtime/worker.ts";
import type { CommandSpec, Parsed } from "./args.ts";
import { followCatchUp } from "./catch-up.ts";
import { execute } from "./execute.ts";
import { queryApi } from "./serve.ts";
import { natsConnection, natsFlags, redactUrl, resolveUrl } from "./target.ts";

/** Whether a failure to start is NATS not answering in time (a leader election, a server just stopped): worth another try. */
function transient(error: unknown): boolean {
  const text = `${(error as { name?: string })?.name ?? ""} ${String(error)}`;
  return /timeout|timed out|no responders|\b503\b|temporarily unavailable|peer offline/i.test(text);
}

/** The flags `workerOptions` reads (eddy run and eddy dev). */
export const workerFlags = {
  "checkpoint-ms": { type: "number", help: "checkpoint interval in ms", default: 1000 },
  "checkpoint-events": { type: "number", help: "checkpoint after this many events per actor", default: 100_000 },
  "table-flush-ms": {
    type: "number",
    help: "write changed result-table rows this often between checkpoints; 0 = only at checkpoints",
    default: 100,
  },
} as const;

export const runCommand: CommandSpec = {
  name: "run",
  summary: "Run the pipeline a module exports until SIGINT/SIGTERM (which checkpoint, then exit 0).",
  positionals: [{ name: "module", help: "a .ts module exporting a Pipeline or a function returning one", required: true }],
  flags: {
    ...natsFlags,
    export: { type: "string", help: "the export to use", default: "default" },
    ...workerFlags,
    port: {
      type: "number",
      help: "serve the query API, /metrics, /healthz and /readyz on this port (0: a free one; none: no HTTP)",
    },
    host: { type: "string", help: "address the HTTP port listens on", default: "127.0.0.1" },
    "worker-id": {
      type: "string",
      help:
        "this worker's name in its group (default: host-pid-random); a restart under the same id takes its partitions back at once",
    },
    "member-timeout-ms": {
      type: "number",
      help: "a worker not heard from for this long is gone and its partitions move",
      default: 5000,
    },
    "warm-up-ms": {
      type: "number",
      help: "a partition moving to a joining worker waits at most this long for it to read its state (0: move at once)",
      default: 10000,
    },
    replicas: {
      type: "number",
      help: "copies of each stream and bucket Eddy creates (1 on one server; 3 advised on a cluster)",
      default: 1,
    },
    token: {
      type: "string",
      help: "with --port: require Authorization: Bearer <token> (else $EDDY_API_TOKEN; not for /healthz, /readyz)",
    },
    ...logFlags,
  },
  examples: [
    "eddy run examples/coffee-shop/pipeline.ts --export coffeeShop --nats nats://127.0.0.1:4222",
    "eddy run examples/coffee-shop/pipeline.ts --export coffeeShop --port 9464   # curl localhost:9464/metrics",
  ],
};

export async function loadPipeline(platform: Platform, module: string, name: string): Promise<Pipeline> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(platform.moduleUrl(module))) as Record<string, unknown>;
  } catch (cause) {
    throw new ConfigError({
      message: `cannot load ${module}: ${(cause as Error).message}`,
      hint: "give the path of a .ts module, relative to this directory",
    });
  }
  const value = mod[name];
  const found = typeof value === "function" ? (value as () => unknown)() : value;
  if (!(found instanceof Pipeline)) {
    const exports = Object.keys(mod).join(", ") || "none";
    throw new ConfigError({
      message: `${module} has no pipeline export "${name}" (its exports: ${exports})`,
      hint: "pass --export <name> naming a Pipeline, or a function that returns one",
    });
  }
  return found;
}

export function workerOptions(flags: Parsed["flags"], log: WorkerOptions["log"]): WorkerOptions {
  return {
    checkpointMs: flags["checkpoint-ms"] as number,
    checkpointEvents: flags["checkpoint-events"] as number,
    tableFlushMs: flags["table-flush-ms"] as number,
    ...(log ? { log } : {}),
  };
}

/** The group flags, checked before anything starts. */
function checkGroupFlags(flags: Parsed["flags"]): void {
  const id = flags["worker-id"] as string | undefined;
  if (id !== undefined && !/^[-\w]{1,100}$/.test(id)) {
    throw new ConfigError({
      message: `--worker-id ${JSON.stringify(id)} is not a valid worker id`,
      hint: "use 1 to 100 letters, digits, - and _ (it names a KV key)",
    });
  }
  const timeout = flags["member-timeout-ms"] as number;
  if (!(timeout >= 200)) {
    throw new ConfigError({ message: `--member-timeout-ms ${timeout} is too short`, hint: "give at least 200 (default 5000)" });
  }
  const warmUp = flags["warm-up-ms"] as number;
  if (!(warmUp >= 0)) {
    throw new ConfigError({
      message: `--warm-up-ms ${warmUp} is not a duration`,
      hint: "give 0 or more milliseconds (default 10000)",
    });
  }
  const replicas = flags.replicas as number;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new ConfigError({
      message: `--replicas ${replicas} is not a replica count`,
      hint: "give 1 to 5 (3 on a 3-node cluster)",
    });
  }
}

export async function run(platform: Platform, { flags, positionals }: Parsed): Promise<number> {
  checkGroupFlags(flags);
  const logger = commandLogger(platform, flags, { cmd: "run" });
  const pipeline = await loadPipeline(platform, positionals[0]!, flags.export as string);
  const url = await resolveUrl(platform, flags.nats);
  const log = logger.sink("info");
  // Listen before starting: a signal during start-up still ends in a clean stop.
  const shutdown = platform.shutdownSignal();
  /** Why the stop was not clean (exit 1), if it was not. */
  let unclean: string | undefined;
  await execute(
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(platform, url, flags.creds);
        let reachable = true;
        void (async () => {
          for await (const s of nc.status()) {
            if (s.type === "disconnect") {
              reachable = false;
              logger.warn("nats-disconnected", {
                nats: redactUrl(url),
                detail: "reconnecting; partitions stop writing meanwhile",
              });
            } else if (s.type === "reconnect") {
              reachable = true;
              logger.info("nats-reconnected", { nats: redactUrl(url) });
            }
          }
        })().catch(() => undefined);
        const join = Effect.tryPromise({
          try: () =>
            Group.join(nc, pipeline, {
              ...workerOptions(flags, log),
              member: {
                host: platform.hostname,
                pid: platform.pid,
                runtime: platform.runtime,
                ...(flags["worker-id"] ? { id: flags["worker-id"] as string } : {}),
              },
              memberTimeoutMs: flags["member-timeout-ms"] as number,
              warmUpMs: flags["warm-up-ms"] as number,
              replicas: flags.replicas as number,
            }),
          catch: (e) => e,
        }).pipe(
          Effect.tapError((e) =>
            Effect.sync(() =>
              transient(e) &&
              logger.warn("start-retrying", { error: String(e), detail: "NATS did not answer in time; trying again" })
            )
          ),
          // A request that times out while a cluster elects a leader (a server just stopped) is tried again.
          Effect.retry({
            while: transient,
            schedule: Schedule.intersect(Schedule.exponential("500 millis"), Schedule.recurs(6)),
          }),
        );
        const group = yield* Effect.acquireRelease(
          join,
          (group) =>
            Effect.promise(async () => {
              unclean = await leaveCleanly(group, reachable, logger);
            }),
        );
        const worker = group.worker;
        let http: string | undefined;
        if (flags.port !== undefined) {
          // Acquired after the worker, so released first: the HTTP side stops before the final checkpoint.
          const token = (flags.token as string | undefined) || platform.env("EDDY_API_TOKEN") || undefined;
          const { listener } = yield* queryApi(platform, nc, {
            port: flags.port as number,
            host: flags.host as string,
            refreshMs: 5000,
            worker,
            group,
            ...(pipeline.dashboard ? { dashboard: pipeline.dashboard } : {}),
            log,
            ...(token ? { token } : {}),
          });
          http = listener.url;
        }
        const nats = redactUrl(url);
        logger.info("running", {
          pipeline: pipeline.id,
          worker: group.id,
          partitions: worker.assignments.length,
          nats,
          ...(http ? { http, metrics: `${http}/metrics` } : {}),
        });
        // Not awaited: its first questions to NATS must not hold up a signal (NATS may be gone).
        const catchUp = followCatchUp(nc, worker, { terminal: platform.errInteractive, write: platform.err });
        const signal = yield* Effect.promise(() => shutdown);
        void catchUp.then((c) => c.stop(), () => undefined);
        logger.info("stopping", { signal });
      }),
    ),
  );
  if (unclean !== undefined) {
    logger.warn("stopped-unclean", { pipeline: pipeline.id, reason: unclean });
    return 1;
  }
  logger.info("stopped", { pipeline: pipeline.id });
  return 0;
}

/** How long a stop may take when NATS is unreachable at the signal (it may come back meanwhile). */
const unreachableStopMs = 5_000;

/**
 * Leave the group: a final checkpoint per partition, leases given back. Returns why it was not
 * clean, if it was not: NATS unreachable (said at once; the wait is bounded), or a final
 * checkpoint that failed. Either way nothing is lost: what is not committed is replayed on the
 * next start.
 */
async function leaveCleanly(
  group: Group,
  reachable: boolean,
  logger: { warn(event: string, fields?: Record<string, unknown>): void },
): Promise<string | undefined> {
  if (!reachable) {
    logger.warn("final-checkpoint-unlikely", {
      reason: "NATS is unreachable",
      detail:
        `waiting at most ${unreachableStopMs} ms for it; what is not committed will be replayed on the next start, nothing is lost`,
    });
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const left = await Promise.race([
    group.leave().then(() => true, () => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), reachable ? 120_000 : unreachableStopMs))),
  ]);
  clearTimeout(timer);
  const failed = group.worker.status().filter((s) => s.error !== undefined);
  if (!left) return `the final checkpoint did not finish${reachable ? "" : " (NATS unreachable)"}`;
  if (failed.length > 0) {
    return `the final checkpoint of ${failed.length} partitions failed: ${failed[0]!.step}.${failed[0]!.partition}: ${
      failed[0]!.error
    }`;
  }
  return undefined;
}
