/**
 * Which NATS server a command talks to: `--nats`, else NATS_URL, else the server `eddy dev`
 * started in this directory (it leaves its URL in .eddy/nats-url). Connections are Effect
 * resources: retried while the server comes up, drained when the command ends.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Effect, Schedule } from "effect";
import { ConfigError, ConnectionError } from "../core/errors.ts";
import { connectNats } from "../log/connection.ts";
import type { Platform } from "../platform/platform.ts";
import type { Parsed } from "./args.ts";
import { execute } from "./execute.ts";

export const natsFlags = {
  nats: {
    type: "string",
    help: "NATS server URL, may hold user:pass@ or token@; a cluster: comma-separated URLs (else $NATS_URL)",
  },
  creds: { type: "string", help: "path of a NATS .creds file" },
} as const;

export const devUrlFile = ".eddy/nats-url";

/** A NATS URL fit for logs: its user and password (or token) as `***`. */
export const redactUrl = (url: string): string => url.replace(/\/\/[^@/]*@/, "//***@");

export async function resolveUrl(platform: Platform, flag: unknown): Promise<string> {
  if (typeof flag === "string" && flag) return flag;
  const env = platform.env("NATS_URL");
  if (env) return env;
  try {
    return new TextDecoder().decode(await platform.readFile(`${platform.cwd()}/${devUrlFile}`)).trim();
  } catch {
    throw new ConfigError({
      message: "no NATS server given",
      hint: "pass --nats nats://host:4222, set NATS_URL, or start `eddy dev` in this directory first",
    });
  }
}

/** A connection as a scoped resource: a few retries on connect, drained on release. */
export function natsConnection(
  platform: Platform,
  url: string,
  credsPath: unknown,
): Effect.Effect<NatsConnection, ConnectionError | ConfigError, import("effect").Scope.Scope> {
  const creds = typeof credsPath === "string"
    ? Effect.tryPromise({
      try: () => platform.readFile(credsPath),
      catch: () => new ConfigError({ message: `cannot read the creds file ${credsPath}`, hint: "check the --creds path" }),
    })
    : Effect.succeed(undefined);
  return Effect.acquireRelease(
    Effect.flatMap(creds, (c) =>
      Effect.retry(
        Effect.tryPromise({ try: () => connectNats({ url, ...(c ? { creds: c } : {}) }), catch: (e) => e as ConnectionError }),
        Schedule.intersect(Schedule.exponential("200 millis"), Schedule.recurs(3)),
      )),
    // Drained, but not for ever: with the server gone a drain would wait for it.
    (nc) =>
      Effect.promise(async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([nc.drain().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 3_000)))]);
        clearTimeout(timer);
        if (!nc.isClosed()) await nc.close().catch(() => undefined);
      }),
  );
}

/** Run a command's work with a connection to its NATS server (retried on connect, drained after). */
export async function withNats<A>(
  platform: Platform,
  flags: Parsed["flags"],
  work: (nc: NatsConnection) => Promise<A>,
): Promise<A> {
  const url = await resolveUrl(platform, flags.nats);
  return execute(
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(platform, url, flags.creds);
        return yield* Effect.tryPromise({ try: () => work(nc), catch: (e) => e });
      }),
    ),
  );
}
