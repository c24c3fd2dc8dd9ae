/**
 * Structured logs: JSON lines for collectors, human lines for terminals, chosen by flag, then
 * environment, then whether stderr is a terminal; bad values say what is accepted.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/core/errors.ts";
import { commandLogger, createLogger, humanLine, jsonLine, logSettings } from "../src/observe/logger.ts";
import { manualClock } from "../src/core/clock.ts";

const at = Date.UTC(2026, 0, 2, 3, 4, 5, 67);

describe("logger", () => {
  it("writes one JSON object per line, with time, level, base fields and the event's fields", () => {
    const line = jsonLine({ time: at, level: "info", event: "running", fields: { pipeline: "shop", error: new Error("boom") } }, {
      cmd: "run",
    });
    expect(line.endsWith("\n")).toBe(true);
    expect(JSON.parse(line)).toEqual({
      time: "2026-01-02T03:04:05.067Z",
      level: "info",
      cmd: "run",
      event: "running",
      pipeline: "shop",
      error: "boom",
    });
  });

  it("writes a human line: local time, level, event, key=value (quoted when needed)", () => {
    const line = humanLine({ time: at, level: "warn", event: "table-opened", fields: { table: "t", rows: 3, note: "a b" } });
    expect(line).toMatch(/^\d\d:\d\d:\d\d\.067 WARN  table-opened table=t rows=3 note="a b"\n$/);
  });

  it("drops records below the level", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "warn", write: (l) => lines.push(l), clock: manualClock(at) });
    log.info("quiet", {});
    log.sink("debug")("quieter", {});
    log.error("loud", { code: 1 });
    expect(lines.map((l) => JSON.parse(l).event)).toEqual(["loud"]);
  });

  it("takes the flag, else the environment, else human on a terminal and JSON otherwise", () => {
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    expect(logSettings({}, env({}), true)).toEqual({ format: "human", level: "info" });
    expect(logSettings({}, env({}), false)).toEqual({ format: "json", level: "info" });
    expect(logSettings({}, env({ EDDY_LOG_FORMAT: "human", EDDY_LOG_LEVEL: "debug" }), false)).toEqual({
      format: "human",
      level: "debug",
    });
    expect(logSettings({ format: "json", level: "error" }, env({ EDDY_LOG_FORMAT: "human" }), true)).toEqual({
      format: "json",
      level: "error",
    });
  });

  it("rejects a bad format or level with what is accepted", () => {
    expect(() => logSettings({ format: "xml" }, () => undefined, true)).toThrow(ConfigError);
    expect(() => logSettings({ format: "xml" }, () => undefined, true)).toThrow(
      /--log-format must be one of json, human, got "xml"/,
    );
    expect(() => logSettings({}, (n) => (n === "EDDY_LOG_LEVEL" ? "loud" : undefined), true)).toThrow(
      /EDDY_LOG_LEVEL must be one of debug, info, warn, error, got "loud"/,
    );
  });

  it("gives a command a logger on stderr from its flags", () => {
    const err: string[] = [];
    const log = commandLogger({ env: () => undefined, err: (t) => err.push(t), errInteractive: false }, { "log-level": "warn" }, {
      cmd: "serve",
    });
    log.info("hidden");
    log.warn("shown", { n: 1 });
    expect(err).toHaveLength(1);
    expect(JSON.parse(err[0]!)).toMatchObject({ level: "warn", cmd: "serve", event: "shown", n: 1 });
  });
});
