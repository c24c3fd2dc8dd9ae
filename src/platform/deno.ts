/**
 * The Deno implementation of Platform. The embedded nats-server is started through Deno's Node
 * compatibility (node:child_process), the same code as on Node.
 */
import { denoRuntimeProbes } from "./runtime-probes.ts";
import { startNatsServer } from "./nats-server.ts";
import type { FetchHandler, HttpListener, ListenOptions, Platform } from "./platform.ts";

interface DenoApi {
  args: string[];
  env: { get(name: string): string | undefined };
  cwd(): string;
  readFile(path: string): Promise<Uint8Array>;
  writeTextFile(path: string, text: string): Promise<void>;
  mkdir(path: string, options: { recursive: boolean }): Promise<void>;
  stdout: { writeSync(bytes: Uint8Array): number; isTerminal(): boolean };
  stderr: { writeSync(bytes: Uint8Array): number; isTerminal(): boolean };
  Command: new (
    command: string,
    options: { args: string[]; stdin: "inherit"; stdout: "inherit"; stderr: "inherit" },
  ) => { output(): Promise<{ code: number }> };
  addSignalListener(signal: string, fn: () => void): void;
  exit(code: number): never;
  memoryUsage(): { rss: number };
  hostname(): string;
  pid: number;
  serve(
    options: { port: number; hostname: string; onListen(addr: { port: number; hostname: string }): void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { finished: Promise<void>; shutdown(): Promise<void> };
}
const deno = (globalThis as unknown as { Deno: DenoApi }).Deno;
const encoder = new TextEncoder();

function writeAll(stream: { writeSync(bytes: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/** Serve HTTP with `Deno.serve`; the Node counterpart is http-node.ts. */
function listenDeno(fetch: FetchHandler, { port, hostname = "127.0.0.1" }: ListenOptions): Promise<HttpListener> {
  return new Promise((resolve) => {
    const server = deno.serve(
      {
        port,
        hostname,
        onListen: (addr) => {
          const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          resolve({ port: addr.port, url: `http://${host}:${addr.port}`, close: () => server.shutdown() });
        },
      },
      fetch,
    );
  });
}

export const denoPlatform: Platform = {
  runtime: "deno",
  hostname: deno.hostname(),
  pid: deno.pid,
  args: deno.args,
  env: (name) => deno.env.get(name),
  cwd: () => deno.cwd(),
  readFile: (path) => deno.readFile(path),
  writeFile: async (path, text) => {
    const dir = path.slice(0, path.lastIndexOf("/"));
    if (dir) await deno.mkdir(dir, { recursive: true });
    await deno.writeTextFile(path, text);
  },
  moduleUrl: (path) => new URL(path, `file://${deno.cwd()}/`).href,
  out: (text) => writeAll(deno.stdout, text),
  err: (text) => writeAll(deno.stderr, text),
  interactive: deno.stdout.isTerminal(),
  errInteractive: deno.stderr.isTerminal(),
  shutdownSignal: () =>
    new Promise((done) => {
      let signals = 0;
      for (const signal of ["SIGINT", "SIGTERM"]) {
        deno.addSignalListener(signal, () => {
          if (++signals > 1) deno.exit(130);
          done(signal);
        });
      }
    }),
  exit: (code) => deno.exit(code),
  rssBytes: () => deno.memoryUsage().rss,
  runtimeProbes: denoRuntimeProbes,
  startNatsServer,
  // The benchmark measures Node: run it with the `node` next to this machine's npm packages.
  runScript: async (url, args) => {
    const command = new deno.Command("node", {
      args: ["--import", "tsx", new URL(url).pathname, ...args],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    });
    return (await command.output()).code;
  },
  listen: listenDeno,
};
