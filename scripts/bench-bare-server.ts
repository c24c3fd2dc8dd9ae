/**
 * The floor of the query-latency case (scripts/bench-serving.ts): a bare node:http server that
 * answers every request with the same bytes (a real row answer of `eddy serve`, given in env
 * `BARE_BODY`), with no replica, no NATS and no routing behind it. The same load client, at the
 * same rate, on the same machine under the same ingest, measures it after `eddy serve`: what the
 * client, the kernel and the machine's scheduling cost a request, whatever the server does.
 *
 * Prints `{"event":"serving","http":"http://127.0.0.1:<port>"}` on stderr once it listens.
 *
 *   BARE_BODY='{"key":"k-1",...}' node --import tsx scripts/bench-bare-server.ts
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const body = Buffer.from(process.env.BARE_BODY ?? "{}");
const server = createServer((_req, res) => {
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
  res.end(body);
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stderr.write(`${JSON.stringify({ event: "serving", http: `http://127.0.0.1:${port}` })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
