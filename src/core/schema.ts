/**
 * Event schemas: what a source's events and a lookup table's values are decoded with. Any
 * Standard Schema v1 (zod, valibot, arktype, effect's `Schema.standardSchemaV1(...)`), or an
 * effect Schema as it is. Decoding is synchronous (an asynchronous `validate` is a ConfigError, or
 * a rejected event); a schema that describes itself as a flat object of plain fields gets the
 * fast path of ./schema-fast-path.ts once it has accepted every probe; rejections always come
 * from the schema's own issues (`qty: Expected number, actual "2"`).
 * See docs/ARCHITECTURE.md, "Decoding and dead letters".
 *
 * @example
 * const orders = SchemaDecoder.of('source "orders"', Order); // zod, valibot, arktype or effect
 * orders.decode(JSON.parse(text)); // Either.right(order) | Either.left('does not match the schema of source "orders": ...')
 */
import type { StandardJSONSchemaV1, StandardSchemaV1 } from "@standard-schema/spec";
import { Either, JSONSchema, ParseResult, Schema } from "effect";
import { ConfigError } from "./errors.ts";
import { type PlainObjectCheck, plainObjectCheck, samplesOf } from "./schema-fast-path.ts";

/** What sources and lookup tables accept: a Standard Schema v1 with output `T`, or an effect Schema of `T`. */
// deno-lint-ignore no-explicit-any
export type EventSchema<T> = StandardSchemaV1<unknown, T> | Schema.Schema<T, any, never>;

type Result = StandardSchemaV1.Result<unknown>;
type Validate = (value: unknown) => Result | Promise<Result>;

export class SchemaDecoder<T = unknown> {
  private constructor(
    /** What decodes with it, for messages: `source "orders"`, `lookup table "menu"`. */
    readonly what: string,
    /** `~standard.vendor`: "zod", "valibot", "arktype", "effect", ... */
    readonly vendor: string,
    readonly fastPath: PlainObjectCheck | undefined,
    readonly validate: Validate,
  ) {}

  /** The decoder of `schema` (a ConfigError if it is not a schema, or validates asynchronously). */
  static of<T>(what: string, schema: EventSchema<T> | SchemaDecoder<T>): SchemaDecoder<T> {
    if (schema instanceof SchemaDecoder) return schema;
    const { vendor, validate, reference, jsonSchemas } = Schema.isSchema(schema)
      ? effectSchema(schema as Schema.Schema<unknown, unknown, never>)
      : standardSchema(what, schema);
    let fast: PlainObjectCheck | undefined;
    try {
      const [input, output] = jsonSchemas();
      fast = plainObjectCheck(input, output);
    } catch {
      fast = undefined; // the library cannot say what its schema is in JSON Schema
    }
    if (fast && !agrees(what, fast, reference)) fast = undefined;
    return new SchemaDecoder<T>(what, vendor, fast, validate);
  }

  /** A parsed value decoded: the schema's output, or why not. */
  decode(value: unknown): Either.Either<T, string> {
    const fast = this.fastPath?.check(value);
    if (fast !== undefined) return Either.right(fast as T);
    const result = this.validate(value);
    if (result instanceof Promise) {
      result.then(undefined, () => {});
      return Either.left(asyncReason(this.what));
    }
    if (result.issues) return Either.left(`does not match the schema of ${this.what}: ${formatIssues(result.issues)}`);
    return Either.right(result.value as T);
  }
}

interface Adapted {
  readonly vendor: string;
  /** What decodes each event. */
  readonly validate: Validate;
  /** The schema's own `~standard.validate`, which `validate` and the fast path must agree with. */
  readonly reference: Validate;
  /** The input and output JSON Schemas (draft-07); throws when the library cannot make them. */
  readonly jsonSchemas: () => readonly [Record<string, unknown> | undefined, Record<string, unknown> | undefined];
}

/**
 * An effect Schema: `validate` is `Schema.standardSchemaV1(schema)`'s, without the fiber it runs
 * per value (ParseResult.decodeUnknownEither with the same options and issue formatter; ~5x faster).
 */
function effectSchema(schema: Schema.Schema<unknown, unknown, never>): Adapted {
  const decode = ParseResult.decodeUnknownEither(schema, { errors: "all" });
  const reference = Schema.standardSchemaV1(schema)["~standard"].validate;
  return {
    vendor: "effect",
    validate(value) {
      const decoded = decode(value);
      if (Either.isRight(decoded)) return { value: decoded.right };
      const issues = ParseResult.ArrayFormatter.formatIssueSync(decoded.left);
      // Forbidden: the schema would need to run asynchronously.
      if (issues.some((i) => i._tag === "Forbidden")) return reference(value);
      return { issues: issues.map(({ message, path }) => ({ message, path })) };
    },
    reference,
    jsonSchemas: () => [
      JSONSchema.make(schema) as unknown as Record<string, unknown>,
      JSONSchema.make(Schema.typeSchema(schema)) as unknown as Record<string, unknown>,
    ],
  };
}

function standardSchema(what: string, schema: unknown): Adapted {
  const std = (schema as Partial<StandardSchemaV1> | null)?.["~standard"];
  if (!std || std.version !== 1 || typeof std.validate !== "function") {
    throw new ConfigError({
      message: `the schema of ${what} is neither a Standard Schema v1 nor an effect Schema`,
      hint: "pass a zod, valibot, arktype or effect schema (anything with `~standard.validate`)",
    });
  }
  const json = (std as Partial<StandardJSONSchemaV1.Props>).jsonSchema;
  const validate = std.validate.bind(std) as Validate;
  return {
    vendor: std.vendor,
    validate,
    reference: validate,
    jsonSchemas: () => json ? [json.input({ target: "draft-07" }), json.output({ target: "draft-07" })] : [undefined, undefined],
  };
}

/**
 * Whether the schema's `validate` accepts every probe built from the fast path's fields, answering
 * an equal object (same fields, same order, same values): a check the JSON Schema left out shows
 * up here when it rejects ordinary values, and the fast path is then not used.
 */
function agrees(what: string, fast: PlainObjectCheck, validate: Validate): boolean {
  const samples = fast.fields.map(samplesOf);
  if (samples.some((s) => s.length === 0)) return false;
  const base = Object.fromEntries(fast.fields.map((f, i) => [f.name, samples[i]![0]]));
  const probes = [base, ...fast.fields.flatMap((f, i) => samples[i]!.slice(1).map((v) => ({ ...base, [f.name]: v })))];
  for (const probe of probes) {
    if (fast.check(probe) !== probe) return false;
    const result = validate(probe);
    if (result instanceof Promise) {
      result.then(undefined, () => {});
      throw new ConfigError({
        message: asyncReason(what),
        hint: "Eddy decodes each event synchronously: drop the async refinements or transforms from the schema",
      });
    }
    if (result.issues || !sameObject(result.value, probe)) return false;
  }
  return true;
}

function sameObject(a: unknown, b: Record<string, unknown>): boolean {
  if (typeof a !== "object" || a === null) return false;
  const keys = Object.keys(a);
  const expected = Object.keys(b);
  return keys.length === expected.length &&
    keys.every((k, i) => k === expected[i] && Object.is((a as Record<string, unknown>)[k], b[k]));
}

function asyncReason(what: string): string {
  return `the schema of ${what} validates asynchronously (its validate returned a Promise), and events are decoded synchronously`;
}

/** Standard Schema issues as one line: `qty: Expected number, actual "2"; item: ...`. */
export function formatIssues(issues: readonly StandardSchemaV1.Issue[]): string {
  const shown = issues.slice(0, 5).map((issue) => {
    const path = (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".");
    // Some libraries (arktype) name the path in the message already.
    return path && !issue.message.startsWith(path) ? `${path}: ${issue.message}` : issue.message;
  });
  return issues.length > 5 ? `${shown.join("; ")}; and ${issues.length - 5} more` : shown.join("; ");
}
