/**
 * The `eddy` command as a child process, for tests of the CLI: run one to its exit (`eddy`), or
 * start `eddy serve` and wait until it listens (`startServe`). NATS_URL is cleared unless given,
 * so a command talks to the test's server only.
 *
 * @example
 * const status = eddy(["status", "coffee-shop", "--json", "--nats", url]);
 * expect(await status.exited).toBe(0);
 * const serve = await startServe(url);
 * await fetch(`${serve.url}/tables`);
 * await serve.stop(); // SIGTERM, and its exit code
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { waitFor } from "./nats.ts";

const bin = resolve(import.meta.dirname, "../../bin/eddy.js");

export interface EddyCommand {
  readonly child: ReturnType<typeof spawn>;
  /** Exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  out(): string;
  err(): string;
}

export function eddy(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): EddyCommand {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: { ...process.env, NATS_URL: "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? -1)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

export interface ServeProcess extends EddyCommand {
  /** Where it listens, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | string>;
}

/** `eddy serve --port 0` on loopback against `natsUrl`; resolves once it logged where it listens. */
export async function startServe(natsUrl: string, args: string[] = []): Promise<ServeProcess> {
  const command = eddy(["serve", "--port", "0", "--nats", natsUrl, "--log-format", "json", ...args]);
  const serving = () => /"event":"serving".*?"url":"([^"]+)"/.exec(command.err())?.[1];
  let exit: number | string | undefined;
  void command.exited.then((code) => (exit = code));
  await waitFor(() => serving() !== undefined || exit !== undefined, {
    timeoutMs: 30_000,
    message: () => `eddy serve listening\n${command.err()}`,
  }).catch(async (error) => {
    command.child.kill("SIGKILL");
    await command.exited;
    throw error;
  });
  if (serving() === undefined) throw new Error(`eddy serve exited with ${exit}\n${command.err()}`);
  return {
    ...command,
    url: serving()!,
    stop: () => {
      command.child.kill("SIGTERM");
      return command.exited;
    },
  };
}
