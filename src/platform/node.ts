/**
 * The Node implementation of Platform.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startNatsServer } from "./nats-server.ts";
import type { Platform } from "./platform.ts";

// `eddy query t | head`: a reader that stops reading is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

export const nodePlatform: Platform = {
  runtime: "node",
  args: process.argv.slice(2),
  env: (name) => process.env[name],
  cwd: () => process.cwd(),
  readFile: async (path) => new Uint8Array(await readFile(path)),
  writeFile: async (path, text) => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
  },
  moduleUrl: (path) => pathToFileURL(resolve(path)).href,
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  interactive: Boolean(process.stdout.isTTY),
  // The listeners stay registered: a second signal while stopping is ignored rather than
  // killing the process half-way through its final checkpoint.
  shutdownSignal: () =>
    new Promise((done) => {
      process.on("SIGINT", done);
      process.on("SIGTERM", done);
    }),
  exit: (code) => process.exit(code),
  rssBytes: () => process.memoryUsage.rss(),
  startNatsServer,
};
