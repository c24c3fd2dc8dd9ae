/**
 * `eddy bench`: the benchmark (scripts/bench.ts) from the CLI, with its flags checked here first
 * so a typo fails at once instead of after minutes of setup. It starts its own nats-server and
 * writes bench/results.json and bench/RESULTS.md, replacing only the cases it measured.
 */
import { ConfigError } from "../core/errors.ts";
import type { Platform } from "../platform/platform.ts";
import type { CommandSpec, Parsed } from "./args.ts";

/** Case ids scripts/bench.ts measures (`state` and `restart` are named after their key count). */
export const benchCases = [
  "ceiling",
  "peer",
  "core-aggregate",
  "core-aggregate-100-keys",
  "state",
  "restart",
  "query-latency",
  "freshness",
  "nexmark",
] as const;

export const benchCommand: CommandSpec = {
  name: "bench",
  summary: "Run the benchmark (its own nats-server); results go to bench/results.json and bench/RESULTS.md.",
  positionals: [],
  flags: {
    cases: { type: "string", help: `comma-separated, from ${benchCases.join(", ")} (default: all)` },
    events: { type: "number", help: "events for ceiling, peer and core-aggregate", default: 1_000_000 },
    keys: { type: "number", help: "distinct keys of those events", default: 100_000 },
    "state-keys": { type: "number", help: "keys of the state and restart cases", default: 1_000_000 },
    "peer-events": { type: "number", help: "events the hand-written peer reads at most", default: 10_000 },
    "peer-seconds": { type: "number", help: "seconds the peer runs at most", default: 20 },
    "serving-seconds": { type: "number", help: "measured seconds of query-latency and freshness", default: 20 },
    "query-rate": { type: "number", help: "query-latency: requests per second (open loop)", default: 500 },
    "ingest-rate": { type: "number", help: "events per second while serving", default: 10_000 },
    "cpu-prof": { type: "boolean", help: "workers write .cpuprofile files to bench/profiles/" },
    verbose: { type: "boolean", help: "print each worker's RESULT line" },
  },
  examples: [
    "eddy bench",
    "eddy bench --cases query-latency,freshness",
    "eddy bench --cases ceiling,core-aggregate --events 100000",
  ],
};

export async function bench(platform: Platform, { flags }: Parsed): Promise<number> {
  const args: string[] = [];
  for (const [name, spec] of Object.entries(benchCommand.flags)) {
    const value = flags[name];
    if (value === undefined || value === false) continue;
    if (spec.type === "number" && value === 0) {
      throw new ConfigError({ message: `--${name} must be a positive number, got 0`, hint: `e.g. --${name} ${spec.default}` });
    }
    if (value === spec.default) continue;
    args.push(`--${name}`, ...(spec.type === "boolean" ? [] : [String(value)]));
  }
  if (typeof flags.cases === "string") {
    const unknown = flags.cases.split(",").filter((c) => !(benchCases as readonly string[]).includes(c.trim()));
    if (unknown.length > 0 || flags.cases.trim() === "") {
      throw new ConfigError({
        message: `--cases has unknown case ${unknown.map((c) => `"${c}"`).join(", ") || "(empty)"}`,
        hint: `choose from ${benchCases.join(", ")}, e.g. --cases query-latency,freshness`,
      });
    }
  }
  // Ctrl-C reaches the script too (the same process group): it stops its nats-server and exits.
  // Listening for the signal here keeps this process until then, so the exit code is the script's.
  void platform.shutdownSignal();
  return platform.runScript(new URL("../../scripts/bench.ts", import.meta.url).href, args);
}
