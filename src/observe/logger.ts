/**
 * Structured logs: one record per event, `{ time, level, event, ...fields }`, written as a JSON
 * line (for collectors: the default when stderr is not a terminal) or as a human line (the default
 * on a terminal). Chosen by `--log-format json|human` or EDDY_LOG_FORMAT, the threshold by
 * `--log-level debug|info|warn|error` or EDDY_LOG_LEVEL. The core takes a plain
 * `(event, fields) => void` (Worker, Catalog); `logger.sink(level)` is one.
 *
 * @example
 * const log = createLogger({ format: "human", level: "info", write: (line) => process.stderr.write(line) });
 * log.info("running", { pipeline: "coffee-shop", http: "http://127.0.0.1:8080" });
 * // 12:00:01.234 INFO  running pipeline=coffee-shop http=http://127.0.0.1:8080
 * const worker = await Worker.start(nc, p, { log: log.sink("info") });
 */
import { ConfigError } from "../core/errors.ts";
import { type Clock, systemClock } from "../core/clock.ts";

export const logLevels = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof logLevels)[number];
export const logFormats = ["json", "human"] as const;
export type LogFormat = (typeof logFormats)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export interface LogRecord {
  readonly time: number;
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: LogFields;
}

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** The `(event, fields)` function the core takes, logging at `level`. */
  sink(level: LogLevel): (event: string, fields: Record<string, unknown>) => void;
}

export interface LoggerOptions {
  readonly format: LogFormat;
  readonly level: LogLevel;
  /** Receives whole lines, each ending in a newline. */
  readonly write: (line: string) => void;
  readonly clock?: Clock;
  /** Fields on every record, e.g. `{ cmd: "run" }` (JSON only: a terminal knows what it runs). */
  readonly base?: LogFields;
}

export function createLogger(options: LoggerOptions): Logger {
  const clock = options.clock ?? systemClock;
  const threshold = logLevels.indexOf(options.level);
  const at = (level: LogLevel) => (event: string, fields: LogFields = {}) => {
    if (logLevels.indexOf(level) < threshold) return;
    const record = { time: clock.now(), level, event, fields };
    options.write(options.format === "json" ? jsonLine(record, options.base) : humanLine(record));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), sink: (level) => at(level) };
}

/** `{"time":"<ISO>","level":"info","event":"running",...}` */
export function jsonLine(record: LogRecord, base: LogFields = {}): string {
  const { time, level, event, fields } = record;
  return `${JSON.stringify({ time: new Date(time).toISOString(), level, ...base, event, ...fields }, jsonSafe)}\n`;
}

/** `12:00:01.234 INFO  running pipeline=coffee-shop` (local time); strings with spaces are quoted. */
export function humanLine(record: LogRecord): string {
  const { time, level, event, fields } = record;
  const d = new Date(time);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${humanValue(v)}`);
  return `${clock} ${level.toUpperCase().padEnd(5)} ${[event, ...parts].join(" ")}\n`;
}

function humanValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value, jsonSafe) ?? String(value);
}

/** Errors as their message, bigints as strings: a log line never throws. */
function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

/**
 * The format and level a command logs with: flag, else environment, else human on a terminal
 * and JSON otherwise, at info. A bad value is a ConfigError naming what is accepted.
 */
export function logSettings(
  flags: { readonly format?: unknown; readonly level?: unknown },
  env: (name: string) => string | undefined,
  terminal: boolean,
): { format: LogFormat; level: LogLevel } {
  const pick = <T extends string>(
    allowed: readonly T[],
    flag: unknown,
    envName: string,
    flagName: string,
    fallback: T,
  ): T => {
    const fromFlag = typeof flag === "string" && flag !== "";
    const raw = fromFlag ? (flag as string) : env(envName) || undefined;
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    throw new ConfigError({
      message: `${fromFlag ? `--${flagName}` : envName} must be one of ${allowed.join(", ")}, got "${raw}"`,
      hint: `e.g. ${fromFlag ? `--${flagName} ${allowed[0]}` : `${envName}=${allowed[0]}`}`,
    });
  };
  return {
    format: pick(logFormats, flags.format, "EDDY_LOG_FORMAT", "log-format", terminal ? "human" : "json"),
    level: pick(logLevels, flags.level, "EDDY_LOG_LEVEL", "log-level", "info"),
  };
}

/** The flags of a command that logs (declared once, shown by `--help`). */
export const logFlags = {
  "log-format": { type: "string", help: "json or human (else $EDDY_LOG_FORMAT; default human on a terminal, else json)" },
  "log-level": { type: "string", help: "debug, info, warn or error (else $EDDY_LOG_LEVEL; default info)" },
} as const;

/** A command's logger on stderr, from its `--log-format` / `--log-level` flags and the environment. */
export function commandLogger(
  io: { env(name: string): string | undefined; err(text: string): void; readonly errInteractive: boolean },
  flags: Readonly<Record<string, unknown>>,
  base: LogFields = {},
): Logger {
  const settings = logSettings({ format: flags["log-format"], level: flags["log-level"] }, io.env, io.errInteractive);
  return createLogger({ ...settings, write: io.err, base });
}
