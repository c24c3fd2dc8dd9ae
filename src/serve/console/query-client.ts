/**
 * The query API as a console page in the browser sees it: a `fetch` client of the JSON endpoints
 * (src/serve/api.ts) and the shapes of their answers, as far as pages read them. Browser code
 * (the DOM library; bundled by scripts/build-pages.ts): the page's address may carry
 * `?access_token=`, which every request passes on.
 *
 * @example
 * const { tables } = await getJson<TablesAnswer>("/tables");
 * const { rows } = await readRange<{ revenue: number }>("revenue_by_store");
 */

/** `reflects` of a table: the lowest checkpoint over its partitions. */
export interface Reflects {
  readonly checkpoint: number | null;
  readonly at: number | null;
}

/** `GET /tables`. */
export interface TablesAnswer {
  readonly tables: readonly {
    readonly name: string;
    readonly step: string | null;
    readonly partitions: number | null;
    readonly rows: number;
    readonly reflects: Reflects;
  }[];
}

export interface Row<R> {
  readonly key: string;
  readonly row: R;
}

/** `GET /tables/:name/rows`, every page of it. */
export interface Rows<R> {
  readonly rows: Row<R>[];
  readonly reflects: Reflects | null;
}

/** `GET /tables/:name/rows/:key/top`. */
export interface TopAnswer {
  readonly rowKey: string;
  readonly window: { readonly start: number; readonly end: number } | null;
  readonly entries: readonly { readonly rank: number; readonly key: string; readonly weight: number }[];
}

export interface ActorAnswer {
  readonly step: string;
  readonly partition: number;
  readonly state: string;
  readonly checkpoint: number;
  readonly committedAt: number | null;
  readonly keys: number;
  readonly eventsIn: number;
  readonly lag: number | null;
  readonly error?: string;
}

/** `GET /actors` (404 without a worker in the service). */
export interface ActorsAnswer {
  readonly pipeline: string;
  readonly at: number;
  readonly sources: readonly {
    readonly id: string;
    readonly stream: string;
    readonly applied: number;
    readonly lag: number | null;
  }[];
  readonly totals: {
    readonly deadLetters: number;
    readonly sourceDeadLetters: number;
    readonly lateEvents: Readonly<Record<string, number>>;
  };
  readonly actors: readonly ActorAnswer[];
}

/** `GET /actors/:step/:partition`. */
export interface ActorDetailAnswer extends ActorAnswer {
  readonly sample: readonly { readonly key: unknown; readonly value: unknown }[];
  readonly recent: readonly {
    readonly seq: number;
    readonly key: unknown;
    readonly time: number | null;
    readonly value: unknown;
  }[];
}

/** An answer that was not 2xx: the API's `{ error: { code, message } }`. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const token = new URLSearchParams(location.search).get("access_token");

/** `path` with the page's access token, if it has one. */
export function withToken(path: string): string {
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}

export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(withToken(path), { cache: "no-store" });
  const body = (await response.json()) as { error?: { message?: string } } | null;
  if (!response.ok) throw new ApiError(response.status, body?.error?.message ?? `HTTP ${response.status}`);
  return body as T;
}

/** The answer, or null when it is 404 (a table or a worker this service does not have). */
export function orNull<T>(promise: Promise<T>): Promise<T | null> {
  return promise.catch((error: unknown) => {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  });
}

/** Every row of a key range (`from` inclusive, `to` exclusive), following the pages. */
export async function readRange<R>(table: string, from?: string, to?: string): Promise<Rows<R>> {
  const rows: Row<R>[] = [];
  let cursor: string | null = null;
  let reflects: Reflects | null = null;
  do {
    const query = new URLSearchParams({ limit: "1000" });
    if (from !== undefined) query.set("from", from);
    if (to !== undefined) query.set("to", to);
    if (cursor) query.set("cursor", cursor);
    const page: { rows: Row<R>[]; next: string | null; reflects: Reflects } = await getJson(
      `/tables/${encodeURIComponent(table)}/rows?${query}`,
    );
    rows.push(...page.rows);
    reflects = page.reflects;
    cursor = page.next;
  } while (cursor);
  return { rows, reflects };
}

/** A member of a pipeline's group, in `GET /groups` (src/serve/ownership.ts). */
export interface GroupMemberAnswer {
  readonly id: string;
  readonly host: string;
  readonly runtime: string;
  readonly pid: number;
  /** Since its last heartbeat was seen. */
  readonly ageMs: number;
  readonly timeoutMs: number;
  readonly live: boolean;
  readonly partitions: number;
  readonly share: number;
}

/** A partition of a group: who holds it, who should, and the move in progress. */
export interface GroupPartitionAnswer {
  readonly step: string;
  readonly partition: number;
  readonly owner: string | null;
  readonly target: string | null;
  readonly move: "releasing" | "taking" | null;
  readonly changedAgoMs: number | null;
  readonly previousOwner: string | null;
}

export interface GroupAnswer {
  readonly pipeline: string;
  readonly self: string | null;
  readonly at: number;
  readonly members: readonly GroupMemberAnswer[];
  readonly partitions: readonly GroupPartitionAnswer[];
  readonly moves: number;
}

/** `GET /groups`: every pipeline group the service follows. */
export interface GroupsAnswer {
  readonly at: number;
  readonly groups: readonly GroupAnswer[];
}
