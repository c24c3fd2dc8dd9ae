/**
 * Connecting to NATS. A URL may carry credentials (`nats://user:pass@host:4222`, or
 * `nats://token@host:4222`); a creds file (NGS/JWT style) may be given separately. Failures
 * become a ConnectionError that says what to check.
 *
 * @example
 * const nc = await connectNats({ url: "nats://127.0.0.1:4222" });
 */
import { credsAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { ConnectionError } from "../core/errors.ts";

export interface NatsTarget {
  readonly url: string;
  /** Contents of a `.creds` file. */
  readonly creds?: Uint8Array;
  readonly name?: string;
  /** Keep reconnecting forever (a service); default true. */
  readonly reconnectForever?: boolean;
  /**
   * Ping the server this often (ms, default 2000); two pings unanswered and the connection counts
   * as dead, and the client connects anew. A connection that stays open but carries nothing (a
   * network partition, a NAT that forgot it) is only noticed this way: at nats.js's default of
   * 2 minutes, a worker cut off that way would rejoin its group minutes after the link is back.
   */
  readonly pingIntervalMs?: number;
}

/** Split credentials out of a NATS URL; the server list never carries them. */
export function parseNatsUrl(url: string): { server: string; user?: string; pass?: string; token?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url.includes("://") ? url : `nats://${url}`);
  } catch {
    throw new ConnectionError({
      url,
      message: `"${url}" is not a NATS URL`,
      hint: "use e.g. nats://127.0.0.1:4222 or nats://user:pass@host:4222",
    });
  }
  const server = `${parsed.protocol}//${parsed.hostname}${parsed.port ? `:${parsed.port}` : ""}`;
  const user = decodeURIComponent(parsed.username);
  const pass = decodeURIComponent(parsed.password);
  if (user && pass) return { server, user, pass };
  if (user) return { server, token: user };
  return { server };
}

/**
 * Connect to the server(s) of `target.url`: one URL, or a comma-separated list of a cluster's
 * servers (credentials, if any, in the first; the client fails over between them).
 */
export async function connectNats(target: NatsTarget): Promise<NatsConnection> {
  const [first, ...others] = target.url.split(",").map((u) => u.trim()).filter((u) => u !== "");
  const { server, ...auth } = parseNatsUrl(first ?? target.url);
  const servers = [server, ...others.map((u) => parseNatsUrl(u).server)];
  try {
    return await connect({
      servers,
      ...auth,
      ...(target.creds ? { authenticator: credsAuthenticator(target.creds) } : {}),
      name: target.name ?? "eddy",
      noAsyncTraces: true,
      maxReconnectAttempts: target.reconnectForever === false ? 10 : -1,
      reconnectTimeWait: 500,
      pingInterval: target.pingIntervalMs ?? 2000,
      maxPingOut: 2,
      timeout: 5000,
    });
  } catch (cause) {
    const text = String((cause as Error)?.message ?? cause);
    const authProblem = /auth|permission/i.test(text);
    throw new ConnectionError({
      url: server,
      message: authProblem
        ? `NATS at ${server} refused the credentials: ${text}`
        : `cannot connect to NATS at ${server}: ${text}`,
      hint: authProblem
        ? "check the user/password or token in NATS_URL (nats://user:pass@host:port), or the --creds file"
        : "check that nats-server is running there with JetStream on (nats-server -js), or unset NATS_URL to let `eddy dev` start one",
      cause,
    });
  }
}
