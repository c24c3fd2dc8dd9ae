/**
 * Runs a local nats-server with JetStream as a child process: for `eddy dev` and for every
 * integration test. Starts it on a free loopback port, waits until JetStream answers (polling with
 * a deadline, never a fixed sleep), keeps its log out of our terminal, and stops it again.
 *
 * @example
 * const server = await startNatsServer();
 * const nc = await connect({ servers: server.url, noAsyncTraces: true });
 * // ... use JetStream ...
 * await nc.close();
 * await server.stop(); // SIGTERM, wait, SIGKILL after a deadline, remove the temporary store
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, mkdirSync, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Data } from "effect";

/** How to get the server onto this machine; part of every "not found" message. */
export const INSTALL_HINT = "Install it with `sudo apt-get install -y nats-server` (Debian/Ubuntu package `nats-server`), " +
  "or run `npm run setup` (scripts/setup.sh) from the repository root.";

/** The nats-server binary is missing, exited before it was ready, or never became ready. */
export class NatsServerError extends Data.TaggedError("NatsServerError")<{
  readonly message: string;
  /** The server's last log lines, when it got as far as writing any. */
  readonly log: readonly string[];
}> {}

export interface NatsServerOptions {
  /** JetStream store directory. Default: a fresh temporary directory that stop() removes. */
  storeDir?: string;
  /** Client port. Default: a free port (retried if another process takes it first). */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** More command-line arguments for nats-server, e.g. ["--cluster_name", "c1"]. */
  extraArgs?: string[];
  /** The binary: a path, or a name looked up on PATH (and /usr/sbin). Default "nats-server". */
  binary?: string;
  /** How long to wait for JetStream to answer. Default 15 000 ms. */
  readyTimeoutMs?: number;
  /** Append the server's output to this file (the last lines are kept in memory regardless). */
  logFile?: string;
}

export interface NatsServer {
  /** e.g. "nats://127.0.0.1:4222" */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** The server's most recent output lines. */
  logTail(): string[];
  /** SIGTERM, await exit, SIGKILL after `timeoutMs` (default 5 000); removes a temporary store. */
  stop(timeoutMs?: number): Promise<void>;
  /** Send a signal and return at once (chaos tests: `kill("SIGKILL")`, then start again). */
  kill(signal: NodeJS.Signals): void;
  /**
   * Resolves once the process has exited: its exit code, or null when a signal ended it.
   * nats-server 2.9 exits with code 1 after a graceful SIGTERM shutdown.
   */
  readonly exited: Promise<number | null>;
}

const LOG_LINES = 50;
const ERROR_LINES = 8;
const POLL_MS = 50;
const PORT_ATTEMPTS = 5;

/** A TCP port nobody listens on right now (bind 127.0.0.1:0, read the port, close). */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("could not read a free port"))));
    });
  });
}

/** True when nothing listens on `port` (we can bind it ourselves). */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.unref();
    probe.once("error", () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** Start nats-server with JetStream and resolve once JetStream answers. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = resolveBinary(opts.binary ?? "nats-server");
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(binary, opts);
    } catch (err) {
      // Between findFreePort() and the server's bind another process may take the port: retry.
      const raced = opts.port === undefined && err instanceof NatsServerError &&
        err.log.some((line) => /address already in use/i.test(line));
      if (!raced || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
}

async function startOnce(binary: string, opts: NatsServerOptions): Promise<NatsServer> {
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? (await findFreePort(host));
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), "eddy-nats-"));
  const args = ["-js", "-a", host, "-p", String(port), "-sd", storeDir, ...(opts.extraArgs ?? [])];

  const log = captureOutput(opts.logFile);
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", log.write);
  child.stderr?.on("data", log.write);
  if (ownStore) tempStores.add(storeDir);
  const removeStore = () => {
    if (!ownStore) return;
    rmSync(storeDir, { recursive: true, force: true });
    tempStores.delete(storeDir);
  };
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    });
    // spawn failures (EACCES, ENOENT after our check) emit "error" and maybe no "exit".
    child.once("error", (err) => {
      log.write(`spawn ${binary}: ${err.message}\n`);
      live.delete(child);
      resolve(null);
    });
  });
  child.once("close", log.end);
  ensureExitHook();

  const url = `nats://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 5_000): Promise<void> => (stopping ??= (async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    await exited;
    removeStore();
  })());

  try {
    await waitUntilReady(url, log.listening, exited, opts.readyTimeoutMs ?? 15_000);
  } catch (err) {
    await stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new NatsServerError({
      message: `nats-server (${binary} ${args.join(" ")}) did not become ready: ${reason}\n` +
        `Its last output:\n${log.tail().slice(-ERROR_LINES).join("\n") || "(none)"}`,
      log: log.tail(),
    });
  }

  return {
    url,
    port,
    storeDir,
    pid: child.pid ?? -1,
    logTail: log.tail,
    stop,
    kill: (signal) => void child.kill(signal),
    exited,
  };
}

/**
 * Poll until our child says it listens and JetStream answers on `url`; give up at the deadline or
 * when the child exits. The log line matters: while a second server fails to bind a taken port,
 * JetStream on that port does answer, but it is the other server.
 */
async function waitUntilReady(
  url: string,
  listening: () => boolean,
  exited: Promise<number | null>,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(`it exited with code ${gone}`);
    if (listening()) {
      try {
        await jetStreamAnswers(url);
        return;
      } catch (err) {
        lastError = err;
      }
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, POLL_MS))]);
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  const what = listening() ? "JetStream did not answer" : "it did not report listening";
  throw new Error(`${what} within ${timeoutMs} ms${detail}`);
}

async function jetStreamAnswers(url: string): Promise<void> {
  const nc = await connect({ servers: url, noAsyncTraces: true, reconnect: false, timeout: 1_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    await jsm.getAccountInfo();
  } finally {
    await nc.close();
  }
}

/** Find the binary, or throw with install instructions. Debian installs it in /usr/sbin. */
function resolveBinary(binary: string): string {
  const candidates = binary.includes("/") ? [binary] : [
    ...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, binary)),
    ...["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"].map((dir) => join(dir, binary)),
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new NatsServerError({
    message: `nats-server not found (looked for ${binary.includes("/") ? binary : `"${binary}" on PATH and in /usr/sbin`}). ` +
      INSTALL_HINT,
    log: [],
  });
}

/** Keep the last lines of output in memory; also append to `logFile` when given. */
function captureOutput(logFile: string | undefined) {
  const lines: string[] = [];
  let partial = "";
  let listening = false;
  if (logFile) mkdirSync(dirname(logFile), { recursive: true });
  let file: WriteStream | undefined = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
  return {
    write: (chunk: Buffer | string) => {
      const text = chunk.toString();
      file?.write(text);
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts.filter((l) => l.length > 0));
      listening ||= parts.some((l) => l.includes("Listening for client connections on"));
      if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
    },
    /** The server printed that it bound its client port (nats-server logs this since 1.x). */
    listening: () => listening,
    tail: () => (partial ? [...lines, partial] : [...lines]).slice(-LOG_LINES),
    end: () => {
      file?.end();
      file = undefined;
    },
  };
}

// Children still running when this process ends are killed and temporary stores removed, so a
// forgotten stop(), a process.exit() or a SIGTERMed test worker (vitest stops its forks that way)
// leaves no server behind. On a signal we act only when nobody else listens for it (`eddy dev`
// does, and stops its server itself); then we re-raise it so the process still dies by it, as the
// signal-exit package does. A SIGKILLed parent cannot clean up: that would need the OS.
const live = new Set<ChildProcess>();
const tempStores = new Set<string>();
let hooked = false;
function ensureExitHook() {
  if (hooked) return;
  hooked = true;
  const cleanUp = () => {
    for (const child of live) child.kill("SIGKILL");
    for (const dir of tempStores) rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", cleanUp);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      cleanUp();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
