/**
 * The coffee-shop dashboard, the page's entry (index.html; bundled by scripts/build-pages.ts into
 * one inline script, nothing fetched from elsewhere: the machines it runs on may be offline).
 * The pipeline carries it (examples/coffee-shop/pipeline.ts) and the query API serves it at `/`.
 *
 * What it shows: revenue per store per minute as a line chart (chart.ts), revenue per store and
 * per category (sales.ts), the top items per store in rank order (top-items.ts), orders in
 * progress when the pipeline follows the order lifecycle (orders-in-progress.ts), orders per
 * second, lag, late orders and dead letters (kpis.ts), the workers of the pipeline's group and
 * who holds each partition, moves as they happen (src/serve/console/group-panel.ts; shown when
 * workers run as a group, `eddy run`), and the operator actors, one of which can be selected to see a sample of its keyed state and its most recent inputs (actors.ts). Each
 * chart point and figure carries its raw value in a `data-value` attribute (the browser test reads
 * them). With `?access_token=` in the page's address, every request passes it on.
 *
 * Live update: short polling of the JSON endpoints, once a second (a new round starts when the
 * previous one has answered, so a slow server is never asked twice at once). Why not the SSE
 * change streams: the page needs more than table changes (actor states, positions, lag: these
 * are not tables and change continuously), every answer comes from memory on the server
 * (microseconds), a round is one request per table plus one for the actors, and polling needs
 * no reconnect or resume logic and passes any proxy.
 *
 * @example
 * // in index.html, which the build inlines:
 * // <script type="module" src="./main.ts"></script>
 */
import { byId } from "../../../src/serve/console/dom.ts";
import { GroupPanel } from "../../../src/serve/console/group-panel.ts";
import {
  type ActorsAnswer,
  getJson,
  type GroupsAnswer,
  orNull,
  readRange,
  type TopAnswer,
} from "../../../src/serve/console/query-client.ts";
import { ActorsPanel } from "./actors.ts";
import { type MinuteRow, renderChart, windowsShown } from "./chart.ts";
import { type RateSamples, renderCounters, renderRate } from "./kpis.ts";
import { type OpenRow, renderOrdersInProgress, type ServeRow } from "./orders-in-progress.ts";
import { type CategoryRow, renderCategories, renderStores, type StoreRow } from "./sales.ts";
import { renderTops } from "./top-items.ts";

/** The per-minute windows held (by row key), and the earliest window start still read. */
const windows = new Map<string, MinuteRow>();
let cutoff = 0;
const rate: RateSamples = [];
const actorsPanel = new ActorsPanel();
const groupPanel = new GroupPanel(byId("groups-section"), byId("groups"), byId("groups-summary"));

function setStatus(ok: boolean, text: string): void {
  byId("status-dot").className = `dot ${ok ? "live" : "down"}`;
  byId("status-text").textContent = text;
}

async function poll(): Promise<void> {
  try {
    const [stores, actors, categories, groups] = await Promise.all([
      readRange<StoreRow>("revenue_by_store"),
      orNull(getJson<ActorsAnswer>("/actors")),
      readRange<CategoryRow>("revenue_by_category"),
      getJson<GroupsAnswer>("/groups"),
    ]);
    const names = stores.rows.map((r) => String(r.key));
    const from = cutoff;
    const minutes = await Promise.all(
      names.map((s) => readRange<MinuteRow>("revenue_per_store_minute", `${s}|${from}`, `${s}}`)),
    );
    let latest = 0;
    for (const w of minutes) {
      for (const r of w.rows) {
        windows.set(String(r.key), r.row);
        latest = Math.max(latest, r.row.windowStart);
      }
    }
    cutoff = Math.max(0, latest - windowsShown * 60000);
    for (const [key, row] of windows) if (row.windowStart < cutoff) windows.delete(key);
    const tops = await Promise.all(
      names.map((s) => orNull(getJson<TopAnswer>(`/tables/top_items_per_store/rows/${encodeURIComponent(s)}/top`))),
    );
    const [open, served] = await Promise.all([
      orNull(readRange<OpenRow>("open_orders_by_store")),
      orNull(readRange<ServeRow>("serve_time_by_store")),
    ]);
    renderStores(stores);
    renderCategories(categories.rows);
    renderChart(names, windows);
    renderTops(names, tops);
    renderOrdersInProgress(open, served);
    // Only this pipeline's group: the server may hold others.
    groupPanel.render({ ...groups, groups: groups.groups.filter((g) => g.pipeline === (actors?.pipeline ?? g.pipeline)) });
    if (actors) {
      byId("pipeline").textContent = actors.pipeline;
      renderRate(rate, actors);
      renderCounters(actors);
      actorsPanel.render(actors);
      await actorsPanel.refreshDetail();
    } else {
      actorsPanel.renderNone();
    }
    setStatus(true, `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus(false, `cannot reach the query API (${error instanceof Error ? error.message : String(error)}), retrying`);
  } finally {
    setTimeout(poll, 1000);
  }
}

void poll();
