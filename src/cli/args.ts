/**
 * Command-line flags: each command declares its flags and positionals once; the same
 * declaration parses argv, checks values, and prints `--help`. A wrong flag or value ends with
 * one message saying what is wrong and what the command accepts.
 *
 * @example
 * const { flags } = parseArgs(devCommand, ["--rate", "200"]); // flags.rate === 200
 */
import { ConfigError } from "../core/errors.ts";

export interface FlagSpec {
  readonly type: "string" | "number" | "boolean";
  readonly help: string;
  readonly default?: string | number | boolean;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly positionals: readonly { readonly name: string; readonly help: string; readonly required: boolean }[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples: readonly string[];
}

export interface Parsed {
  readonly flags: Readonly<Record<string, string | number | boolean | undefined>>;
  readonly positionals: readonly string[];
}

export function parseArgs(spec: CommandSpec, argv: readonly string[]): Parsed {
  const flags: Record<string, string | number | boolean | undefined> = {};
  for (const [name, f] of Object.entries(spec.flags)) flags[name] = f.default;
  const positionals: string[] = [];
  const usage = `run \`eddy ${spec.name} --help\` for its flags`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const f = spec.flags[name];
    if (!f) {
      const known = Object.keys(spec.flags).map((n) => `--${n}`).join(", ");
      throw new ConfigError({
        message: `unknown flag --${name} for \`eddy ${spec.name}\``,
        hint: `it takes ${known || "no flags"}; ${usage}`,
      });
    }
    if (f.type === "boolean") {
      flags[name] = eq < 0 ? true : arg.slice(eq + 1) !== "false";
      continue;
    }
    const raw = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (raw === undefined) {
      throw new ConfigError({ message: `--${name} needs a value`, hint: `e.g. --${name} ${f.default ?? "..."}; ${usage}` });
    }
    if (f.type === "number") {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n) || n < 0) {
        throw new ConfigError({
          message: `--${name} expects a non-negative number, got "${raw}"`,
          hint: `e.g. --${name} ${f.default ?? 1}`,
        });
      }
      flags[name] = n;
    } else flags[name] = raw;
  }
  const required = spec.positionals.filter((p) => p.required).length;
  if (positionals.length < required) {
    const missing = spec.positionals[positionals.length]!;
    throw new ConfigError({
      message: `\`eddy ${spec.name}\` needs <${missing.name}>: ${missing.help}`,
      hint: `e.g. ${spec.examples[0]}`,
    });
  }
  if (positionals.length > spec.positionals.length) {
    throw new ConfigError({
      message: `unexpected argument "${positionals[spec.positionals.length]}" for \`eddy ${spec.name}\``,
      hint: usage,
    });
  }
  return { flags, positionals };
}

export function helpText(spec: CommandSpec): string {
  const pos = spec.positionals.map((p) => (p.required ? ` <${p.name}>` : ` [${p.name}]`)).join("");
  const lines = [`eddy ${spec.name}${pos} [flags]`, "", spec.summary, ""];
  for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(22)} ${p.help}`);
  for (const [name, f] of Object.entries(spec.flags)) {
    const value = f.type === "boolean" ? "" : ` <${f.type}>`;
    const def = f.default === undefined ? "" : ` (default ${f.default})`;
    lines.push(`  --${(name + value).padEnd(20)} ${f.help}${def}`);
  }
  lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`), "");
  return lines.join("\n");
}
