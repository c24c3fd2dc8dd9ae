/**
 * The top items per store, in rank order (`GET /tables/top_items_per_store/rows/<store>/top`: the
 * store's latest 5-minute window). Browser code.
 *
 * @example
 * renderTops(["store-1"], [await getJson<TopAnswer>("/tables/top_items_per_store/rows/store-1/top")]);
 */
import { byId, el } from "../../../src/serve/console/dom.ts";
import { count, hhmm } from "../../../src/serve/console/format.ts";
import type { TopAnswer } from "../../../src/serve/console/query-client.ts";

/** One card per store; `tops[i]` is the answer for `stores[i]` (null: the store has none yet). */
export function renderTops(stores: readonly string[], tops: readonly (TopAnswer | null)[]): void {
  const grid = byId("tops");
  grid.replaceChildren();
  tops.forEach((top, i) => {
    if (!top) return;
    const max = top.entries[0]?.weight ?? 1;
    const list = el(
      "ol",
      {},
      top.entries.map((e) =>
        el("li", { "data-item": e.key, "data-rank": e.rank, "data-value": e.weight }, [
          el("span", { class: "rank", text: String(e.rank) }),
          el("span", { class: "bar", style: `--w:${((100 * e.weight) / max).toFixed(1)}%` }, [el("span", { text: e.key })]),
          el("span", { class: "weight", text: count.format(e.weight) }),
        ])
      ),
    );
    const when = top.window ? `${hhmm(top.window.start)} to ${hhmm(top.window.end)} UTC` : "";
    grid.appendChild(el("div", { class: "top-store", "data-store": stores[i], "data-row": top.rowKey }, [
      el("h3", { text: stores[i] }),
      el("div", { class: "window", text: when }),
      list,
    ]));
  });
  if (!grid.children.length) grid.appendChild(el("div", { class: "empty", text: "no closed 5-minute windows yet" }));
}
