/**
 * Revenue by store and by category (tables `revenue_by_store`, `revenue_by_category`), and the
 * revenue figure. Browser code.
 *
 * @example
 * renderStores((await readRange<StoreRow>("revenue_by_store")));
 */
import { byId, el, setFigure } from "../../../src/serve/console/dom.ts";
import { count, money } from "../../../src/serve/console/format.ts";
import type { Row, Rows } from "../../../src/serve/console/query-client.ts";

export interface StoreRow {
  readonly orders: number;
  readonly revenue: number;
  readonly avgTicket: number;
}

export interface CategoryRow {
  readonly orders: number;
  readonly revenue: number;
}

const colors = ["#2f6fde", "#e0742b", "#1f9d55", "#a64fc9", "#d64545", "#0f9fb0", "#8c6d1f", "#5b6275"];

/** The colour of the i-th store, the same in the table and the chart. */
export function storeColor(i: number): string {
  return colors[i % colors.length]!;
}

export function renderStores({ rows, reflects }: Rows<StoreRow>): void {
  const body = byId("stores");
  body.replaceChildren();
  let revenue = 0;
  let orders = 0;
  rows.forEach((r, i) => {
    revenue += r.row.revenue;
    orders += r.row.orders;
    body.appendChild(el("tr", { "data-store": r.key }, [
      el("td", {}, [el("span", { class: "pill", style: `background:${storeColor(i)};color:#fff`, text: r.key })]),
      el("td", { class: "num", "data-field": "orders", "data-value": r.row.orders, text: count.format(r.row.orders) }),
      el("td", { class: "num", "data-field": "revenue", "data-value": r.row.revenue, text: money.format(r.row.revenue) }),
      el("td", { class: "num", "data-field": "avgTicket", "data-value": r.row.avgTicket, text: money.format(r.row.avgTicket) }),
    ]));
  });
  if (rows.length === 0) body.appendChild(el("tr", {}, [el("td", { colspan: 4, class: "empty", text: "no orders yet" })]));
  setFigure("kpi-revenue", revenue, money.format(revenue));
  byId("kpi-orders").textContent = `${count.format(orders)} orders`;
  byId("stores-reflects").textContent = reflects && reflects.checkpoint !== null ? `checkpoint ${reflects.checkpoint}` : "";
}

export function renderCategories(rows: readonly Row<CategoryRow>[]): void {
  const body = byId("categories");
  body.replaceChildren();
  const total = rows.reduce((n, r) => n + r.row.revenue, 0);
  for (const r of [...rows].sort((a, b) => b.row.revenue - a.row.revenue)) {
    const share = total > 0 ? r.row.revenue / total : 0;
    body.appendChild(el("tr", { "data-category": r.key }, [
      el("td", { text: r.key }),
      el("td", { class: "num", "data-field": "orders", "data-value": r.row.orders, text: count.format(r.row.orders) }),
      el("td", { class: "num", "data-field": "revenue", "data-value": r.row.revenue, text: money.format(r.row.revenue) }),
      el("td", { title: `${(share * 100).toFixed(1)}%` }, [
        el("span", { class: "share", style: `width:${Math.max(2, Math.round(share * 90))}px` }),
      ]),
    ]));
  }
}
