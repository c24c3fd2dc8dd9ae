/**
 * A strict parser of Prometheus' text exposition format 0.0.4, for tests: it throws, naming the
 * line, on anything a Prometheus server would reject or that the format forbids (a malformed
 * line or escape, a TYPE after its samples or twice, a family split in two groups, a duplicate
 * series, a histogram whose buckets are not cumulative or whose `+Inf` bucket is not its count),
 * and `conventionViolations` lists names that break Prometheus' naming conventions.
 *
 * @example
 * const { families, samples } = parseExposition(await (await fetch(`${base}/metrics`)).text());
 * families.get("eddy_checkpoint_duration_seconds")?.type; // "histogram"
 */

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  type: string;
  help?: string;
  readonly samples: Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const types = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * A sample value. Prometheus reads values with Go's strconv.ParseFloat, which ignores case in
 * "NaN" and "Inf": prom-client writes NaN as "Nan" (an event-loop gauge scraped before the monitor
 * took a sample), which Prometheus reads, so this does too.
 */
function parseValue(text: string, where: string): number {
  if (/^nan$/i.test(text)) return Number.NaN;
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: not a value: ${text}`);
  return Number(text);
}

/** `{a="x",b="y"}` from just after `{`; returns the labels and the index after `}`. */
function parseLabels(line: string, at: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = at;
  for (;;) {
    if (line[i] === "}") return [labels, i + 1];
    const eq = line.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: a label without =`);
    const name = line.slice(i, eq);
    if (!labelName.test(name) || name.startsWith("__")) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (line[eq + 1] !== '"') throw new Error(`${where}: label value of ${name} not quoted`);
    let value = "";
    let j = eq + 2;
    for (;; j++) {
      const c = line[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === "\\") {
        const next = line[++j];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else throw new Error(`${where}: bad escape \\${next} in label value`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

/** The family a sample belongs to: a histogram's or summary's `_bucket`, `_sum`, `_count` are its own. */
function familyOf(sample: string, families: ReadonlyMap<string, Family>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const base = sample.slice(0, -suffix.length);
    const type = families.get(base)?.type;
    if (type === "histogram" || (type === "summary" && suffix !== "_bucket")) return base;
  }
  return sample;
}

export function parseExposition(text: string): { families: Map<string, Family>; samples: Sample[] } {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const done = new Set<string>(); // families whose group of lines has ended
  let current: string | undefined;
  const enter = (name: string, where: string) => {
    if (current === name) return;
    if (done.has(name)) throw new Error(`${where}: family ${name} appears in two groups`);
    if (current !== undefined) done.add(current);
    current = name;
  };
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, f = { name, type: "untyped", samples: [] });
    return f;
  };
  text.split("\n").forEach((line, index) => {
    const where = `line ${index + 1} (${line})`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest = ""] = m;
      if (!metricName.test(name!)) throw new Error(`${where}: bad metric name`);
      enter(name!, where);
      const f = family(name!);
      if (kind === "TYPE") {
        if (!types.has(rest)) throw new Error(`${where}: unknown type`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE after the family's samples`);
        if (f.type !== "untyped") throw new Error(`${where}: a second TYPE`);
        f.type = rest;
      } else {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest;
      }
      return;
    }
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (!name) throw new Error(`${where}: not a sample`);
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === "{") [labels, i] = parseLabels(line, i + 1, where);
    const fields = line.slice(i).split(" ");
    if (fields[0] !== "" || fields.length < 2 || fields.length > 3) throw new Error(`${where}: expected " value [timestamp]"`);
    const value = parseValue(fields[1]!, where);
    if (fields[2] !== undefined && !/^-?\d+$/.test(fields[2])) throw new Error(`${where}: bad timestamp`);
    const key = `${name}{${
      Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    }}`;
    if (series.has(key)) throw new Error(`${where}: duplicate series`);
    series.add(key);
    const base = familyOf(name, families);
    enter(base, where);
    const sample = { name, labels, value };
    family(base).samples.push(sample);
    samples.push(sample);
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return { families, samples };
}

/** Per series (labels but `le`): `le` ascending, counts non-decreasing, `+Inf` = `_count`, a `_sum`. */
function checkHistogram(f: Family): void {
  const byLabels = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
    let entry = byLabels.get(key);
    if (!entry) byLabels.set(key, entry = { buckets: [] });
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: a bucket without le`);
      entry.buckets.push([parseValue(le, `${f.name}{le}`), s.value]);
    } else if (s.name === `${f.name}_sum`) entry.sum = s.value;
    else if (s.name === `${f.name}_count`) entry.count = s.value;
    else throw new Error(`${f.name}: sample ${s.name} in a histogram`);
  }
  for (const [labels, { buckets, sum, count }] of byLabels) {
    const where = `${f.name}${labels}`;
    if (sum === undefined || count === undefined) throw new Error(`${where}: no _sum or _count`);
    const last = buckets[buckets.length - 1];
    if (!last || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${where}: the last bucket is not +Inf`);
    if (last[1] !== count) throw new Error(`${where}: +Inf bucket ${last[1]} != _count ${count}`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]![0] > buckets[i - 1]![0])) throw new Error(`${where}: le not ascending`);
      if (buckets[i]![1] < buckets[i - 1]![1]) throw new Error(`${where}: bucket counts not cumulative`);
    }
  }
}

/** Gauges of prom-client's default metrics whose names end in `_total` (a convention they break). */
export const promClientTotalGauges: readonly string[] = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/**
 * Names that break https://prometheus.io/docs/practices/naming/: a counter not ending in
 * `_total`, `_total` on something else, a non-base unit (ms, kilobytes, percent...), no HELP.
 */
export function conventionViolations(families: ReadonlyMap<string, Family>, except: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const f of families.values()) {
    if (except.includes(f.name)) continue;
    if (f.help === undefined || f.type === "untyped") out.push(`${f.name}: no HELP or TYPE`);
    if (f.type === "counter" && !f.name.endsWith("_total")) out.push(`${f.name}: a counter not ending in _total`);
    if (f.type !== "counter" && f.name.endsWith("_total")) out.push(`${f.name}: _total on a ${f.type}`);
    if (
      /_(ms|msec|milliseconds|us|microseconds|ns|nanoseconds|minutes|hours|kb|kib|mb|mib|gb|kilobytes|megabytes|percent)(_|$)/
        .test(f.name)
    ) {
      out.push(`${f.name}: not a base unit`);
    }
  }
  return out;
}
