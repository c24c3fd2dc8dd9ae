/**
 * The page format of result tables: the one module that knows how a table bucket's entries are
 * named and written (the operator actors write them, src/state/table.ts and the replicas of
 * src/serve/ read them): `meta`, a layout index `i.<partition>`, and pages
 * `p.<partition>.<chunkBits>.<chunk>` holding the rows of one state chunk, a row per line.
 * See docs/ARCHITECTURE.md, "The page format", for the entries, row placement and page decoding.
 *
 * @example
 * const bytes = encodePage({ at: 0, checkpoint: 1, rows: [["store-1", { orders: 3 }]] });
 * decodePage(bytes).rows; // [["store-1", { orders: 3 }]]
 * pageKey(0, 2, 3); // "p.0.2.3"
 */
import { chunkOf, type Key, keyHash, partitionOf } from "../core/partition.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface TableMeta {
  readonly step: string;
  readonly partitions: number;
  /** Rows of a windowed step: keyed `<key>|<windowStart>`, placed by `<key>`. */
  readonly windowed?: boolean;
}

/** The row key of a window's row in a windowed table. */
export function windowRowKey(key: Key, windowStart: number): string {
  return `${key}|${windowStart}`;
}

export interface Page {
  /** Clock time of the checkpoint that wrote the page. */
  readonly at: number;
  readonly checkpoint: number;
  readonly rows: readonly (readonly [Key, unknown])[];
}

export const metaKey = "meta";
export const indexKey = (partition: number): string => `i.${partition}`;
export const pageKey = (partition: number, chunkBits: number, chunk: number): string => `p.${partition}.${chunkBits}.${chunk}`;

export function encodePage(page: Page): Uint8Array {
  let text = `{"at":${JSON.stringify(page.at)},"checkpoint":${JSON.stringify(page.checkpoint)},"rows":[`;
  page.rows.forEach((row, i) => (text += (i === 0 ? "\n" : ",\n") + JSON.stringify(row)));
  return encoder.encode(text + "\n]}");
}

export function decodePage(bytes: Uint8Array): Page {
  return JSON.parse(decoder.decode(bytes)) as Page;
}

/**
 * A page as a replica keeps it: its bytes, where each of their lines starts, and the key of each
 * row, but not the rows themselves, which are parsed when read (`pageRow`). The bytes are a copy,
 * off the JavaScript heap: a busy table rewrites every page at each flush with a few rows changed,
 * and parsed rows, which live until their key changes again, were what a replica's young-generation
 * collections copied (2 MB at each, 7-16 ms).
 */
export interface PageLines {
  /** Clock time of the checkpoint that wrote the page. */
  readonly at: number;
  readonly checkpoint: number;
  readonly bytes: Uint8Array;
  /** `starts[i]`: where line `i` starts (line 0 is the header, row `r` is line `r + 1`); the last entry is past the end. */
  readonly starts: Int32Array;
  /** The key of each row, in the page's order (the previous version's array when they are the same). */
  readonly keys: readonly Key[];
}

const NEWLINE = 10;
const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;

function lineStarts(bytes: Uint8Array): Int32Array {
  let n = 1;
  for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) n++;
  const starts = new Int32Array(n + 1);
  let i = 1;
  for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) starts[i++] = at + 1;
  starts[n] = bytes.length + 1;
  return starts;
}

/** Where the key of the row line starting at `from` (`[<key>,<row>]`) ends. */
function keyEnd(bytes: Uint8Array, from: number): number {
  let at = from + 1;
  if (bytes[at] !== QUOTE) return bytes.indexOf(COMMA, at); // a number
  for (at++; bytes[at] !== QUOTE; at++) if (bytes[at] === BACKSLASH) at++;
  return at + 1;
}

/** Whether bytes `a[from, to)` equal `b[other, other + to - from)`. */
function sameBytes(a: Uint8Array, from: number, to: number, b: Uint8Array, other: number): boolean {
  for (let k = 0; k < to - from; k++) if (a[from + k] !== b[other + k]) return false;
  return true;
}

/** Where row `r`'s JSON ends in its line (before `]`, and `,` on every row line but the last). */
function rowEnd(page: PageLines, r: number): number {
  return page.starts[r + 2]! - (r === page.keys.length - 1 ? 2 : 3);
}

/** Row `r` of a page as JSON text, as the writer wrote it (JSON.stringify). */
export function pageRowJson(page: PageLines, r: number): string {
  const from = keyEnd(page.bytes, page.starts[r + 1]!) + 1;
  return decoder.decode(page.bytes.subarray(from, rowEnd(page, r)));
}

/** Row `r` of a page, parsed. */
export function pageRow(page: PageLines, r: number): unknown {
  return JSON.parse(pageRowJson(page, r));
}

/** Whether row `r` of `a` and row `s` of `b` were written as the same bytes (key and row). */
export function sameRow(a: PageLines, r: number, b: PageLines, s: number): boolean {
  const from = a.starts[r + 1]!;
  const to = rowEnd(a, r);
  const other = b.starts[s + 1]!;
  return rowEnd(b, s) - other === to - from && sameBytes(a.bytes, from, to, b.bytes, other);
}

/**
 * Decode a page for a replica, reusing the keys of its previous version where a row's key is
 * written the same (a writer rewrites a page in its rows' order): a page rewritten with a few
 * changed rows costs a byte comparison per row, and nothing is parsed but its header and new keys;
 * its keys are the previous version's array when none changed.
 * A page in one line (written before pages had row lines) is parsed whole and laid out in lines.
 */
export function decodePageFrom(data: Uint8Array, previous?: PageLines): PageLines {
  const starts = lineStarts(data);
  const last = starts.length - 2; // the index of the last line
  const line = (i: number) => decoder.decode(data.subarray(starts[i]!, starts[i + 1]! - 1));
  if (last < 1 || line(last) !== "]}" || !line(0).endsWith('"rows":[')) return decodePageFrom(encodePage(decodePage(data)));
  const bytes = data.slice(); // a copy: `data` may be a view of a whole socket read
  const { at, checkpoint } = JSON.parse(line(0) + "]}") as Page;
  // The previous version's keys (the array itself while every key is the same), else new ones.
  let keys: Key[] | undefined = previous && previous.keys.length === last - 1 ? undefined : [];
  for (let i = 1; i < last; i++) {
    const from = starts[i]!;
    const end = keyEnd(bytes, from);
    if (previous && i < previous.starts.length - 2) {
      const other = previous.starts[i]!;
      if (keyEnd(previous.bytes, other) - other === end - from && sameBytes(bytes, from, end, previous.bytes, other)) {
        keys?.push(previous.keys[i - 1]!);
        continue;
      }
    }
    keys ??= previous!.keys.slice(0, i - 1);
    keys.push(JSON.parse(decoder.decode(bytes.subarray(from + 1, end))) as Key);
  }
  return { at, checkpoint, bytes, starts, keys: keys ?? previous!.keys };
}

/** A partition's page layout, the value of `i.<partition>`. */
export function decodeIndex(bytes: Uint8Array): { chunkBits: number } {
  return JSON.parse(decoder.decode(bytes)) as { chunkBits: number };
}

export function decodeMeta(bytes: Uint8Array): TableMeta {
  return JSON.parse(decoder.decode(bytes)) as TableMeta;
}

/** What an entry of a table bucket is, from its key. */
export type TableEntry =
  | { readonly kind: "meta" }
  | { readonly kind: "index"; readonly partition: number }
  | { readonly kind: "page"; readonly partition: number; readonly chunkBits: number; readonly chunk: number };

export function parseEntryKey(key: string): TableEntry | undefined {
  if (key === metaKey) return { kind: "meta" };
  const [kind, partition, bits, chunk] = key.split(".");
  if (kind === "i") return { kind: "index", partition: Number(partition) };
  if (kind === "p") return { kind: "page", partition: Number(partition), chunkBits: Number(bits), chunk: Number(chunk) };
  return undefined;
}

/** The placement of a row of a table: its partition and, under a layout of `chunkBits`, its page key. */
export function placementOf(meta: TableMeta, rowKey: Key): { partition: number; page(chunkBits: number): string } {
  // A windowed table's row `<key>|<start>` lives where its key does.
  const placedBy = meta.windowed && typeof rowKey === "string" && rowKey.includes("|")
    ? rowKey.slice(0, rowKey.lastIndexOf("|"))
    : rowKey;
  const hash = keyHash(placedBy);
  const partition = partitionOf(hash, meta.partitions);
  return { partition, page: (chunkBits) => pageKey(partition, chunkBits, chunkOf(hash, chunkBits)) };
}

/** The value of `i.<partition>`: the partition's page layout. */
export function encodeIndex(chunkBits: number): Uint8Array {
  return encoder.encode(JSON.stringify({ chunkBits }));
}

export function encodeMeta(meta: TableMeta): Uint8Array {
  return encoder.encode(JSON.stringify(meta));
}

/** A KV key filter matching every page of `partition` under the layout of `chunkBits`. */
export function layoutPages(partition: number, chunkBits: number): string {
  return `p.${partition}.${chunkBits}.>`;
}

/** The chunk index of a page key of `partition` under the layout of `chunkBits`, if it is one. */
export function chunkOfPageKey(key: string, partition: number, chunkBits: number): number | undefined {
  const entry = parseEntryKey(key);
  return entry?.kind === "page" && entry.partition === partition && entry.chunkBits === chunkBits ? entry.chunk : undefined;
}
