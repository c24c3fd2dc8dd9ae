/**
 * Serving HTTP on Node: a Web-standard fetch handler (a Hono app's `fetch`) on a port, through
 * @hono/node-server. The Deno counterpart is in deno.ts (`Deno.serve`). A request the `shortcut`
 * answers is answered on node:http directly: a row read under load costs the Web Request and
 * Response objects most of its time and garbage otherwise.
 *
 * @example
 * const listener = await listenNode(api.fetch, { port: 0 }); // a free port
 * console.log(listener.url); // http://127.0.0.1:40123
 * await listener.close();
 */
import type { AddressInfo } from "node:net";
import { createServer } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { FetchHandler, HttpListener, ListenOptions } from "./platform.ts";

export function listenNode(
  fetch: FetchHandler,
  { port, hostname = "127.0.0.1", shortcut }: ListenOptions,
): Promise<HttpListener> {
  return new Promise((resolve, reject) => {
    const listener = getRequestListener((request) => fetch(request), { hostname });
    const server = createServer((req, res) => {
      const body = shortcut?.(req.method!, req.url!, req.headers.authorization);
      if (body === undefined) return listener(req, res);
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
    server.listen(port, hostname, () => {
      const info = server.address() as AddressInfo;
      server.off("error", reject);
      const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `http://${host}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Open streams (Server-Sent Events) and idle keep-alive sockets would hold close() open.
            server.closeAllConnections();
          }),
      });
    });
    server.once("error", reject);
  });
}
