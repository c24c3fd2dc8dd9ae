/**
 * The Node implementation of Platform.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { constants, hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { listenNode } from "./http-node.ts";
import { startNatsServer } from "./nats-server.ts";
import type { Platform } from "./platform.ts";
import { nodeRuntimeProbes } from "./runtime-probes.ts";

// `eddy query t | head`: a reader that stops reading is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

export const nodePlatform: Platform = {
  runtime: "node",
  hostname: hostname(),
  pid: process.pid,
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
  errInteractive: Boolean(process.stderr.isTTY),
  // The first signal asks for a clean stop (a final checkpoint); a second one, while stopping,
  // ends the process at once: the last checkpoint is still consistent, replay covers the rest.
  shutdownSignal: () =>
    new Promise((done) => {
      let signals = 0;
      const on = (signal: string) => {
        if (++signals > 1) process.exit(130);
        done(signal);
      };
      process.on("SIGINT", on);
      process.on("SIGTERM", on);
    }),
  exit: (code) => process.exit(code),
  rssBytes: () => process.memoryUsage.rss(),
  runtimeProbes: nodeRuntimeProbes,
  startNatsServer,
  runScript: (url, args) =>
    new Promise((done, fail) => {
      const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(url), ...args], { stdio: "inherit" });
      child.on("error", fail);
      child.on("exit", (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    }),
  listen: listenNode,
};
