/**
 * The `eddy` command: one entry per subcommand, each declared with its flags (src/cli/args.ts) so
 * that `--help` and errors come from the same declaration. Errors Eddy knows end with one line
 * saying what is wrong and one saying how to fix it; exit code 1 (2 for usage errors).
 */
import type { Platform } from "../platform/platform.ts";
import { type CommandSpec, helpText, parseArgs, type Parsed } from "./args.ts";
import { dev, devCommand } from "./dev.ts";
import { gen, genCommand } from "./gen.ts";
import { query, queryCommand } from "./query.ts";
import { run, runCommand } from "./run.ts";
import { status, statusCommand } from "./status.ts";
import { serve, serveCommand } from "./serve.ts";
import { tail, tailCommand } from "./tail.ts";
import { bench, benchCommand } from "./bench.ts";

type Handler = (platform: Platform, parsed: Parsed) => Promise<number>;

const commands: ReadonlyArray<readonly [CommandSpec, Handler]> = [
  [devCommand, dev],
  [runCommand, run],
  [queryCommand, query],
  [statusCommand, status],
  [serveCommand, serve],
  [tailCommand, tail],
  [genCommand, gen],
  [benchCommand, bench],
];

function usage(): string {
  const lines = ["eddy: a stateful stream processor on NATS JetStream", "", "Commands:"];
  for (const [spec] of commands) lines.push(`  ${spec.name.padEnd(8)} ${spec.summary}`);
  lines.push("", "Run `eddy <command> --help` for its flags and an example.", "");
  return lines.join("\n");
}

export async function main(platform: Platform): Promise<number> {
  const [name, ...rest] = platform.args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    platform.out(usage());
    return name ? 0 : 2;
  }
  const entry = commands.find(([spec]) => spec.name === name);
  if (!entry) {
    platform.err(
      `eddy: unknown command "${name}"\n  fix: use one of ${
        commands.map(([s]) => s.name).join(", ")
      }; \`eddy --help\` lists them\n`,
    );
    return 2;
  }
  const [spec, handler] = entry;
  if (rest.includes("--help") || rest.includes("-h")) {
    platform.out(helpText(spec));
    return 0;
  }
  try {
    return await handler(platform, parseArgs(spec, rest));
  } catch (error) {
    return report(platform, error);
  }
}

/** Print an error as what went wrong and how to fix it; a stack only for the unexpected. */
function report(platform: Platform, error: unknown): number {
  const e = error as { _tag?: string; message?: string; hint?: string; log?: readonly string[] };
  if (e && typeof e === "object" && typeof e._tag === "string") {
    platform.err(`eddy: ${e.message}\n`);
    if (e.hint) platform.err(`  fix: ${e.hint}\n`);
    if (e.log?.length) platform.err(`  nats-server said:\n${e.log.map((l) => `    ${l}`).join("\n")}\n`);
    return e._tag === "ConfigError" ? 2 : 1;
  }
  platform.err(`eddy: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}
