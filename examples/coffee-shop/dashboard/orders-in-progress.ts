/**
 * Orders in progress per store, when the pipeline follows the order lifecycle
 * (`open_orders_by_store`, `serve_time_by_store`): open now, served, time to serve, abandoned.
 * The card stays hidden without those tables. Browser code.
 *
 * @example
 * renderOrdersInProgress(await orNull(readRange("open_orders_by_store")), await orNull(readRange("serve_time_by_store")));
 */
import { byId, el } from "../../../src/serve/console/dom.ts";
import { count, minutes } from "../../../src/serve/console/format.ts";
import type { Rows } from "../../../src/serve/console/query-client.ts";

export interface OpenRow {
  readonly open: number;
  readonly abandoned: number;
}

export interface ServeRow {
  readonly served: number;
  readonly avgWaitMs: number;
  readonly longestWaitMs: number;
}

type Progress = Partial<OpenRow & ServeRow>;

export function renderOrdersInProgress(open: Rows<OpenRow> | null, served: Rows<ServeRow> | null): void {
  const card = byId("lifecycle");
  card.hidden = !open && !served;
  if (card.hidden) return;
  const byStore = new Map<string, Progress>();
  const at = (key: string): Progress => {
    let progress = byStore.get(key);
    if (!progress) byStore.set(key, progress = {});
    return progress;
  };
  for (const r of open?.rows ?? []) Object.assign(at(String(r.key)), { open: r.row.open, abandoned: r.row.abandoned });
  for (const r of served?.rows ?? []) Object.assign(at(String(r.key)), r.row);
  const body = byId("lifecycle-stores");
  body.replaceChildren();
  for (const store of [...byStore.keys()].sort()) {
    const r = byStore.get(store)!;
    const cell = (field: string, value: number | undefined, text: string) =>
      el("td", { class: "num", "data-field": field, "data-value": value ?? "", text });
    body.appendChild(el("tr", { "data-store": store }, [
      el("td", { text: store }),
      cell("open", r.open, count.format(r.open ?? 0)),
      cell("served", r.served, count.format(r.served ?? 0)),
      cell("avgWaitMs", r.avgWaitMs, minutes(r.avgWaitMs)),
      cell("longestWaitMs", r.longestWaitMs, minutes(r.longestWaitMs)),
      cell("abandoned", r.abandoned, count.format(r.abandoned ?? 0)),
    ]));
  }
  if (byStore.size === 0) {
    body.appendChild(el("tr", {}, [el("td", { colspan: 6, class: "empty", text: "no orders placed yet" })]));
  }
}
