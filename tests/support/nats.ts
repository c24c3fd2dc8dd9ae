/**
 * Test kit for integration tests against a real nats-server: one server per `describe`, on a free
 * port with its own temporary store, plus `waitFor` to poll for a state with a deadline (tests
 * never sleep to wait for state).
 *
 * @example
 * describe("orders stream", () => {
 *   const nats = useNatsServer();
 *   it("stores an order", async () => {
 *     const nc = await nats.connect(); // closed in afterAll
 *     const jsm = await jetstreamManager(nc);
 *     await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
 *     await waitFor(async () => (await jsm.streams.info("ORDERS")).state.messages === 0);
 *   });
 * });
 */
import { existsSync, readdirSync } from "node:fs";
import { afterAll, beforeAll, expect } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { recordsOf } from "../../src/log/record-batch.ts";
import { readStream } from "../../src/log/streams.ts";
import { type NatsServer, type NatsServerOptions, startNatsServer } from "../../src/platform/nats-server.ts";

export interface NatsServerFixture {
  /** The running server (available inside tests and hooks, not at collection time). */
  readonly server: NatsServer;
  /** e.g. "nats://127.0.0.1:40123" */
  readonly url: string;
  /** A new connection to the server, closed in afterAll. */
  connect(opts?: Partial<ConnectionOptions>): Promise<NatsConnection>;
}

const HOOK_TIMEOUT_MS = 30_000;

/** Start a nats-server for the enclosing `describe`; stop it and delete its store afterwards. */
export function useNatsServer(opts: NatsServerOptions = {}): NatsServerFixture {
  let server: NatsServer | undefined;
  const connections: NatsConnection[] = [];
  const running = (): NatsServer => {
    if (!server) throw new Error("useNatsServer: the server is available only inside tests and hooks");
    return server;
  };

  beforeAll(async () => {
    server = await startNatsServer(opts);
    // The house rules: never the default port, and a store of its own that starts empty.
    expect(server.url, "a test's nats-server never listens on the default port").not.toMatch(/:4222$/);
    if (opts.storeDir === undefined) expect(readdirSync(server.storeDir).filter((f) => f !== "jetstream")).toEqual([]);
  }, HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.allSettled(connections.splice(0).map((nc) => nc.close()));
    const store = server?.storeDir;
    await server?.stop();
    if (store && opts.storeDir === undefined) expect(existsSync(store), `${store} deleted after the tests`).toBe(false);
  }, HOOK_TIMEOUT_MS);

  return {
    get server() {
      return running();
    },
    get url() {
      return running().url;
    },
    async connect(connectOpts = {}) {
      const nc = await natsConnect({ servers: running().url, noAsyncTraces: true, ...connectOpts });
      connections.push(nc);
      return nc;
    },
  };
}

export interface WaitForOptions {
  /** Give up after this long. Default 5 000 ms. */
  timeoutMs?: number;
  /** Time between checks. Default 20 ms. */
  intervalMs?: number;
  /** What was being waited for; leads the error message on timeout (a function: asked then). */
  message?: string | (() => string);
}

/**
 * Poll `condition` until it returns true; throw a clear error at the deadline. A condition that
 * throws counts as "not yet", and its last error is reported if time runs out; a condition that
 * does not answer by the deadline fails it too (it is not awaited for ever).
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 5_000, intervalMs = 20, message = "condition" }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const unanswered = Symbol("unanswered");
  let lastError: unknown;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const answer = await Promise.race([
        Promise.resolve().then(condition),
        new Promise<typeof unanswered>((resolve) => (timer = setTimeout(() => resolve(unanswered), deadline - Date.now()))),
      ]);
      if (answer === unanswered) lastError = new Error("the condition itself did not answer by the deadline");
      else if (answer) return;
    } catch (err) {
      lastError = err;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  const what = typeof message === "function" ? message() : message;
  throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms${detail}`, { cause: lastError });
}

/**
 * Every record of a stream, decoded from JSON, in stream order (an ordered consumer): a message's
 * one record, or each of a record batch's (src/log/record-batch.ts).
 */
export async function readStreamJson<T>(nc: NatsConnection, stream: string): Promise<T[]> {
  const held = (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  const out: T[] = [];
  const read = await readStream(nc, stream, {}, (m) => {
    for (const record of recordsOf(m.data, m.headers)) out.push(record as T);
  });
  // Everything the stream held when reading began, and (messages arriving meanwhile aside) no more.
  expect(read, `messages read from ${stream}`).toBeGreaterThanOrEqual(held);
  return out;
}
