/**
 * What Eddy needs from the runtime it runs on (Node or Deno), in one interface. Only this
 * folder touches `process`, `Deno` or `node:` modules; the CLI and the core receive a Platform.
 *
 * @example
 * await main(nodePlatform); // src/platform/node-main.ts
 */
import type { NatsServer, NatsServerOptions } from "./nats-server.ts";

export interface Platform {
  readonly runtime: "node" | "deno";
  readonly args: readonly string[];
  env(name: string): string | undefined;
  cwd(): string;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, text: string): Promise<void>;
  /** Resolve a path against the working directory, as a file URL for dynamic import. */
  moduleUrl(path: string): string;
  out(text: string): void;
  err(text: string): void;
  readonly interactive: boolean;
  /** Resolves on the first SIGINT or SIGTERM. */
  shutdownSignal(): Promise<string>;
  exit(code: number): never;
  rssBytes(): number;
  startNatsServer(options: NatsServerOptions): Promise<NatsServer>;
}
