/**
 * Revenue per store per minute as a line chart (table `revenue_per_store_minute`, rows
 * `<store>|<windowStart>`): the last `windowsShown` closed windows, a line and a dot per store;
 * each dot carries its store, window, revenue and orders in data attributes. Browser code.
 *
 * @example
 * renderChart(["store-1"], new Map([["store-1|1704096000000", { windowStart: 1704096000000, revenue: 42, orders: 7 }]]));
 */
import { byId, el, svg } from "../../../src/serve/console/dom.ts";
import { hhmm, money } from "../../../src/serve/console/format.ts";
import { storeColor } from "./sales.ts";

export interface MinuteRow {
  readonly windowStart: number;
  readonly orders: number;
  readonly revenue: number;
}

/** How many one-minute windows the chart shows. */
export const windowsShown = 30;

/** Draw the chart of `windows` (by row key) for `stores`, in their order. */
export function renderChart(stores: readonly string[], windows: ReadonlyMap<string, MinuteRow>): void {
  const rows = [...windows.values()];
  const starts = [...new Set(rows.map((r) => r.windowStart))].sort((a, b) => a - b).slice(-windowsShown);
  const chart = byId("chart");
  const legend = byId("legend");
  chart.replaceChildren();
  legend.replaceChildren();
  if (starts.length === 0) {
    chart.appendChild(
      el("div", {
        class: "empty",
        text: "no closed one-minute windows yet (a window appears when the watermark passes its end)",
      }),
    );
    byId("chart-range").textContent = "";
    return;
  }
  byId("chart-range").textContent = `${hhmm(starts[0]!)} to ${hhmm(starts[starts.length - 1]! + 60000)} UTC`;
  const W = 760, H = 280, left = 62, right = 14, top = 12, bottom = 28;
  let max = 0;
  for (const r of rows) if (starts.includes(r.windowStart)) max = Math.max(max, r.revenue);
  const step = Math.pow(10, Math.floor(Math.log10(Math.max(max, 1))));
  const niceMax = Math.max(step, Math.ceil((max * 1.1) / step) * step);
  const x = (start: number) =>
    starts.length === 1 ? (left + W - right) / 2 : left + ((W - left - right) * starts.indexOf(start)) / (starts.length - 1);
  const y = (v: number) => top + (H - top - bottom) * (1 - v / niceMax);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "revenue per store per minute" });
  for (let i = 0; i <= 4; i++) {
    const v = (niceMax * i) / 4;
    root.appendChild(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    root.appendChild(svg("text", { x: left - 8, y: y(v) + 4, "text-anchor": "end" }, money.format(v).replace(".00", "")));
  }
  root.appendChild(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) }));
  const every = Math.max(1, Math.ceil(starts.length / 10));
  starts.forEach((start, i) => {
    if (i % every === 0 || i === starts.length - 1) {
      root.appendChild(svg("text", { x: x(start), y: H - 8, "text-anchor": "middle" }, hhmm(start)));
    }
  });
  stores.forEach((store, si) => {
    const color = storeColor(si);
    const points = starts.flatMap((start) => {
      const row = windows.get(`${store}|${start}`);
      return row ? [row] : [];
    });
    if (points.length > 1) {
      const d = points.map((r, i) => `${i ? "L" : "M"}${x(r.windowStart).toFixed(1)},${y(r.revenue).toFixed(1)}`).join(" ");
      root.appendChild(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }));
    }
    for (const r of points) {
      const dot = svg("circle", {
        cx: x(r.windowStart),
        cy: y(r.revenue),
        r: 3.2,
        fill: color,
        "data-store": store,
        "data-window": r.windowStart,
        "data-value": r.revenue,
        "data-orders": r.orders,
      });
      dot.appendChild(svg("title", {}, `${store} ${hhmm(r.windowStart)}: ${money.format(r.revenue)} (${r.orders} orders)`));
      root.appendChild(dot);
    }
    const last = points[points.length - 1];
    legend.appendChild(el("span", { style: `--c:${color}`, text: store + (last ? ` ${money.format(last.revenue)}` : "") }));
  });
  chart.appendChild(root);
}
