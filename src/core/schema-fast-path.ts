/**
 * The decode fast path: a check compiled from the JSON Schema a schema publishes about itself (the
 * Standard JSON Schema `~standard.jsonSchema`, or effect's `JSONSchema.make`), for a flat object of
 * required string, number, integer, boolean and literal fields (with numeric bounds). It answers
 * the parsed event itself when the event has exactly those fields, in the schema's order, and
 * every value passes; anything else is undefined ("don't know") and the schema's own `validate`
 * decides, so it never rejects. `samplesOf` gives the probes ./schema.ts runs before trusting it.
 * See docs/ARCHITECTURE.md, "Decoding and dead letters", for what it accepts and why the probes.
 *
 * @example
 * const fast = plainObjectCheck(input, output); // the input and output JSON Schemas
 * fast?.check({ store: "store-1", qty: 2 }); // the same object, or undefined
 */

/** A compiled fast path: the check, and the fields it covers (for the probes). */
export interface PlainObjectCheck {
  readonly check: (json: unknown) => object | undefined;
  readonly fields: readonly PlainField[];
}

/** One field, as the JSON Schema says: a type, a set of literals, bounds. */
export interface PlainField {
  readonly name: string;
  readonly type: "string" | "number" | "integer" | "boolean" | undefined;
  /** `const` / `enum`: the only values allowed (undefined: any of the type). */
  readonly values: readonly (string | number | boolean | null)[] | undefined;
  readonly minimum: number;
  readonly maximum: number;
  readonly exclusiveMinimum: number;
  readonly exclusiveMaximum: number;
}

/** Keywords that say nothing about which values pass. */
const annotations = new Set([
  "$schema",
  "$id",
  "$comment",
  "title",
  "description",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
]);

type Json = Record<string, unknown>;

/**
 * The fast path of a schema whose input and output JSON Schemas describe the same flat object of
 * plain fields (the schema transforms nothing there); undefined for any other schema.
 */
export function plainObjectCheck(input: Json | undefined, output: Json | undefined): PlainObjectCheck | undefined {
  if (!input || !output) return undefined;
  const fields = plainObject(input);
  const out = plainObject(output);
  if (!fields || !out || JSON.stringify(fields) !== JSON.stringify(out)) return undefined;
  const names = fields.map((f) => f.name);
  const checks = fields.map(fieldCheck);
  const n = names.length;
  return {
    fields,
    check(json) {
      if (typeof json !== "object" || json === null || Object.getPrototypeOf(json) !== Object.prototype) return undefined;
      const event = json as Record<string, unknown>;
      let i = 0;
      for (const name in event) {
        if (names[i] !== name) return undefined;
        i++;
      }
      if (i !== n) return undefined;
      for (i = 0; i < n; i++) if (!checks[i]!(event[names[i]!])) return undefined;
      return event;
    },
  };
}

/** The fields of a flat object schema whose every property is required and plain, else undefined. */
function plainObject(root: Json): PlainField[] | undefined {
  const defs = { ...record(root["definitions"]), ...record(root["$defs"]) };
  const resolve = (schema: Json): Json[] | undefined => {
    const ref = schema["$ref"];
    if (ref === undefined) return [schema];
    if (typeof ref !== "string") return undefined;
    const match = /^#\/(?:\$defs|definitions)\/([^/~]+)$/.exec(ref);
    const target = match ? record(defs[match[1]!]) : undefined;
    if (!target || target["$ref"] !== undefined) return undefined;
    const { $ref: _, ...siblings } = schema;
    return [target, siblings]; // effect puts constraints beside a $ref: both apply
  };
  // A named object schema is a $ref to its definition.
  const [object, siblings = {}] = resolve(root) ?? [];
  if (!object) return undefined;
  const allowed = ["type", "properties", "required", "additionalProperties", "$defs", "definitions"];
  if (Object.keys(siblings).some((key) => !annotations.has(key) && key !== "$defs" && key !== "definitions")) return undefined;
  if (Object.keys(object).some((key) => !annotations.has(key) && !allowed.includes(key))) return undefined;
  // additionalProperties only concerns fields the schema does not name: an event with any goes to validate.
  const properties = record(object["properties"]);
  const required = object["required"] ?? [];
  if (object["type"] !== "object" || !properties || !Array.isArray(required)) return undefined;
  const names = Object.keys(properties);
  if (required.length !== names.length || !names.every((n) => required.includes(n)) || names.includes("__proto__")) {
    return undefined;
  }
  const fields: PlainField[] = [];
  for (const name of names) {
    const parts = record(properties[name]) && resolve(properties[name] as Json);
    const field = parts && plainField(name, parts);
    if (!field) return undefined;
    fields.push(field);
  }
  return fields;
}

/** The conjunction of the keywords of `parts` (a field's schema, and what its $ref names). */
function plainField(name: string, parts: readonly Json[]): PlainField | undefined {
  let type: PlainField["type"];
  let values: (string | number | boolean | null)[] | undefined;
  const bounds = { minimum: -Infinity, maximum: Infinity, exclusiveMinimum: -Infinity, exclusiveMaximum: Infinity };
  for (const part of parts) {
    for (const [key, value] of Object.entries(part)) {
      if (annotations.has(key)) continue;
      if (key === "type") {
        const t = Array.isArray(value) && value.length === 1 ? value[0] : value;
        if (t !== "string" && t !== "number" && t !== "integer" && t !== "boolean") return undefined;
        if (type === undefined || type === t || (type === "number" && t === "integer")) type = t;
        else if (!(type === "integer" && t === "number")) return undefined;
      } else if (key === "const" || key === "enum") {
        const list = key === "const" ? [value] : value;
        if (!Array.isArray(list) || list.length === 0 || !list.every(primitive)) return undefined;
        values = values ? values.filter((v) => list.some((l) => Object.is(l, v))) : [...list];
      } else if (key === "minimum" || key === "exclusiveMinimum") {
        if (typeof value !== "number") return undefined;
        bounds[key] = Math.max(bounds[key], value);
      } else if (key === "maximum" || key === "exclusiveMaximum") {
        if (typeof value !== "number") return undefined;
        bounds[key] = Math.min(bounds[key], value);
      } else return undefined;
    }
  }
  if (type === undefined && values === undefined) return undefined;
  const numeric = type === "number" || type === "integer";
  const bounded = bounds.minimum !== -Infinity || bounds.maximum !== Infinity || bounds.exclusiveMinimum !== -Infinity ||
    bounds.exclusiveMaximum !== Infinity;
  if (bounded && !numeric) return undefined;
  return { name, type, values, ...bounds };
}

function fieldCheck(field: PlainField): (v: unknown) => boolean {
  const { type, values, minimum, maximum, exclusiveMinimum, exclusiveMaximum } = field;
  const ofType = type === "string"
    ? (v: unknown) => typeof v === "string"
    : type === "boolean"
    ? (v: unknown) => typeof v === "boolean"
    : type === "integer"
    ? (v: unknown) =>
      Number.isSafeInteger(v) && (v as number) >= minimum && (v as number) <= maximum && (v as number) > exclusiveMinimum &&
      (v as number) < exclusiveMaximum
    : type === "number"
    ? (v: unknown) =>
      typeof v === "number" && Number.isFinite(v) && v >= minimum && v <= maximum && v > exclusiveMinimum &&
      v < exclusiveMaximum
    : () => true;
  if (values === undefined) return ofType;
  if (values.length === 1) {
    const only = values[0];
    return (v) => Object.is(v, only) && ofType(v);
  }
  return (v) => values.some((l) => Object.is(l, v)) && ofType(v);
}

/**
 * Values of `field` that its check accepts, ordinary and at the bounds: the probes that a schema's
 * `validate` must accept, unchanged, before its fast path is trusted.
 */
export function samplesOf(field: PlainField): unknown[] {
  const fits = fieldCheck(field);
  const candidates: unknown[] = field.values
    ? [...field.values]
    : (field.type === "string"
      ? ["a", "", "store-1", "Z 9", "é", "0", "true", "x".repeat(64)]
      : field.type === "boolean"
      ? [true, false]
      : [
        field.minimum,
        field.maximum,
        field.exclusiveMinimum + 1,
        field.exclusiveMaximum - 1,
        field.exclusiveMinimum + 0.5,
        field.exclusiveMaximum - 0.5,
        1,
        0,
        -1,
        2,
        13,
        100,
        0.5,
        3.75,
        -2.25,
        65_536,
        1_704_096_000_000,
        -1e6,
        2 ** 31,
        Number.MAX_SAFE_INTEGER,
        1e21,
        1e-7,
      ]);
  return [...new Set(candidates.filter(fits))];
}

function primitive(v: unknown): v is string | number | boolean | null {
  return v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
}

function record(v: unknown): Json | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}
