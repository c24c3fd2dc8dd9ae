/**
 * Serving HTTP on Node: a Web-standard fetch handler (a Hono app's `fetch`) on a port, through
 * @hono/node-server. The Deno counterpart is in deno.ts (`Deno.serve`).
 *
 * @example
 * const listener = await listenNode(api.fetch, { port: 0 }); // a free port
 * console.log(listener.url); // http://127.0.0.1:40123
 * await listener.close();
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { FetchHandler, HttpListener, ListenOptions } from "./platform.ts";

export function listenNode(fetch: FetchHandler, { port, hostname = "127.0.0.1" }: ListenOptions): Promise<HttpListener> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: (request) => fetch(request), port, hostname }, (info: AddressInfo) => {
      server.off("error", reject);
      const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `http://${host}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Open streams (Server-Sent Events) and idle keep-alive sockets would hold close() open.
            (server as Server).closeAllConnections();
          }),
      });
    }) as Server;
    server.once("error", reject);
  });
}
