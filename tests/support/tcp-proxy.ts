/**
 * A TCP proxy on loopback, for tests of a process losing its connection: point the process at
 * the proxy instead of the server, then cut the link and restore it.
 *
 * - `cut("reset")`: every connection is reset at once and new ones are refused (a crashed link,
 *   a firewall sending resets): the client notices at once.
 * - `cut("silent")`: every connection stays open but carries nothing more in either direction,
 *   and new ones are refused (a network partition, a NAT that dropped its state): the client
 *   notices only by its own pings. Those connections stay dead after `restore()`, as they would
 *   after a NAT forgot them; only new connections go through again.
 * - `latencyMs`: every chunk is held back this long, in order.
 *
 * @example
 * const proxy = await startTcpProxy({ port: server.port });
 * const child = startWorkerProcess(proxy.url, "examples/coffee-shop/pipeline.ts", "coffeeShop");
 * proxy.cut("silent");
 * proxy.restore();
 * await proxy.close();
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxyOptions {
  /** The server's port (on `host`). */
  readonly port: number;
  /** Default 127.0.0.1; the proxy listens on the same address. */
  readonly host?: string;
  /** Hold every chunk back this long, in order (default 0). */
  readonly latencyMs?: number;
}

export interface TcpProxy {
  /** `nats://127.0.0.1:<port>`: what to connect to instead of the server. */
  readonly url: string;
  readonly port: number;
  /** Connections open now (silent ones included). */
  readonly connections: number;
  /** Connections accepted and passed through since the proxy started. */
  readonly accepted: number;
  /** Connections refused while cut. */
  readonly refused: number;
  latencyMs: number;
  cut(mode?: "reset" | "silent"): void;
  /** Pass new connections through again (silenced ones stay dead). */
  restore(): void;
  /** Close the listener and every connection. */
  close(): Promise<void>;
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  silent: boolean;
  /** When the last chunk each way is due, so that latency keeps the order. */
  dueUp: number;
  dueDown: number;
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const host = options.host ?? "127.0.0.1";
  const links = new Set<Link>();
  let cut = false;
  let accepted = 0;
  let refused = 0;
  let latencyMs = options.latencyMs ?? 0;

  const forward = (link: Link, to: Socket, chunk: Buffer, direction: "up" | "down") => {
    if (link.silent || to.destroyed) return;
    if (latencyMs <= 0) {
      to.write(chunk);
      return;
    }
    const now = Date.now();
    const due = Math.max(now + latencyMs, direction === "up" ? link.dueUp : link.dueDown);
    if (direction === "up") link.dueUp = due;
    else link.dueDown = due;
    setTimeout(() => {
      if (!link.silent && !to.destroyed) to.write(chunk);
    }, due - now);
  };

  const server: Server = createServer((client) => {
    if (cut) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    accepted++;
    const upstream = connect(options.port, host);
    const link: Link = { client, upstream, silent: false, dueUp: 0, dueDown: 0 };
    links.add(link);
    const drop = () => {
      if (!links.delete(link)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => forward(link, upstream, chunk, "up"));
    upstream.on("data", (chunk: Buffer) => forward(link, client, chunk, "down"));
    for (const socket of [client, upstream]) {
      socket.on("error", drop);
      socket.on("close", drop);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;

  return {
    url: `nats://${host}:${port}`,
    port,
    get connections() {
      return links.size;
    },
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    get latencyMs() {
      return latencyMs;
    },
    set latencyMs(ms: number) {
      latencyMs = ms;
    },
    cut(mode = "reset") {
      cut = true;
      for (const link of [...links]) {
        if (mode === "silent") {
          link.silent = true;
        } else {
          links.delete(link);
          link.client.resetAndDestroy();
          link.upstream.destroy();
        }
      }
    },
    restore() {
      cut = false;
    },
    async close() {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      links.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
