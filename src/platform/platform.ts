/**
 * What Eddy needs from the runtime it runs on (Node or Deno), in one interface. Only this
 * folder touches `process`, `Deno` or `node:` modules; the CLI and the core receive a Platform.
 *
 * @example
 * await main(nodePlatform); // src/platform/node-main.ts
 */
import type { NatsServer, NatsServerOptions } from "./nats-server.ts";

/** A Web-standard request handler, e.g. a Hono app's `fetch`. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * Answers a server may give without the fetch handler, with the same bytes: the JSON body of a
 * 200 for a request, or undefined to leave the request to the fetch handler. `url` is the path
 * and query as sent. The query API's row reads are answered this way on Node, without Web
 * Request and Response objects (a platform may ignore it: the fetch handler answers the same).
 */
export type Shortcut = (method: string, url: string, authorization: string | undefined) => string | undefined;

export interface ListenOptions {
  /** 0 picks a free port. */
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly hostname?: string;
  readonly shortcut?: Shortcut;
}

export interface HttpListener {
  readonly port: number;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Stop listening and end open connections. */
  close(): Promise<void>;
}

/**
 * The event loop's delay, sampled by a repeating timer: each sample is the whole interval between
 * two ticks, in nanoseconds, as Node's `perf_hooks.monitorEventLoopDelay` records it.
 */
export interface EventLoopDelay {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  percentile(p: number): number;
  /** Forget the samples so far. */
  reset(): void;
  /** Stop sampling. */
  disable(): void;
}

/** A garbage collection's kind, as prom-client's `nodejs_gc_duration_seconds` labels it. */
export type GcKind = "major" | "minor" | "incremental" | "weakcb";

/**
 * What the runtime tells /metrics where prom-client's default metrics fall short
 * (src/serve/runtime-metrics.ts; the probes and the measurements behind them:
 * src/platform/runtime-probes.ts). An event-loop monitor only where prom-client's does not work (Deno).
 */
export interface RuntimeProbes {
  /** CPU time this process used so far, in microseconds (Node's `process.cpuUsage()`). */
  cpuUsage(): { readonly user: number; readonly system: number };
  /** Call `pause` with each garbage collection's kind and pause (seconds), until the returned stop. */
  observeGc?(pause: (kind: GcKind, seconds: number) => void): () => void;
  /** Start sampling the event loop's delay every `resolutionMs`. */
  monitorEventLoopDelay?(resolutionMs: number): EventLoopDelay;
}

export interface Platform {
  readonly runtime: "node" | "deno";
  /** This machine's name and this process's id (how a worker names itself in its group). */
  readonly hostname: string;
  readonly pid: number;
  readonly args: readonly string[];
  env(name: string): string | undefined;
  cwd(): string;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, text: string): Promise<void>;
  /** Resolve a path against the working directory, as a file URL for dynamic import. */
  moduleUrl(path: string): string;
  out(text: string): void;
  err(text: string): void;
  /** stdout is a terminal. */
  readonly interactive: boolean;
  /** stderr is a terminal (logs and progress bars go there). */
  readonly errInteractive: boolean;
  /** Resolves on the first SIGINT or SIGTERM. */
  shutdownSignal(): Promise<string>;
  exit(code: number): never;
  rssBytes(): number;
  /** What /metrics needs from the runtime beyond prom-client's default metrics. */
  readonly runtimeProbes: RuntimeProbes;
  startNatsServer(options: NatsServerOptions): Promise<NatsServer>;
  /**
   * Run a TypeScript script (a file URL) with Node and tsx, sharing this process's stdio;
   * resolves to its exit code (a signal: 128 + its number).
   */
  runScript(url: string, args: readonly string[]): Promise<number>;
  /** Serve HTTP with a fetch handler until the listener is closed. */
  listen(fetch: FetchHandler, options: ListenOptions): Promise<HttpListener>;
}
